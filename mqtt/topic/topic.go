package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter in bytes: it travels as a UTF-8
// string with a two-byte length [MQTT-4.7.3-3] [MQTT-1.5.4].
const MaxLen = 65535

// SharePrefix starts a shared subscription's filter: $share/{group}/{filter}
// [MQTT-4.8.2].
const SharePrefix = "$share/"

// Errors returned (wrapped with the byte offset where it helps) by ValidName,
// ValidFilter and ParseShared. Test with errors.Is.
var (
	ErrEmpty         = errors.New("topic: empty")
	ErrTooLong       = errors.New("topic: longer than 65535 bytes")
	ErrInvalidUTF8   = errors.New("topic: invalid UTF-8")
	ErrNUL           = errors.New("topic: contains U+0000")
	ErrWildcard      = errors.New("topic: wildcard in a topic name")
	ErrPlacement     = errors.New("topic: wildcard not alone in its level")
	ErrHashNotLast   = errors.New("topic: '#' not the last level")
	ErrInvalidShared = errors.New("topic: invalid shared subscription")
)

// ValidName reports whether name may be used as the topic name of a PUBLISH:
// at least one byte [MQTT-4.7.3-1], at most MaxLen bytes [MQTT-4.7.3-3],
// well-formed UTF-8 without U+0000 [MQTT-4.7.3-2] [MQTT-1.5.4-1,2] and no
// wildcard characters [MQTT-3.3.2-2] [MQTT-4.7.1-1]. Empty levels are allowed
// ("a//b", "/a", "a/"). Names beginning with '$' are valid here; whether a
// client may publish to them is the broker's policy.
func ValidName(name string) error {
	if err := checkLen(name); err != nil {
		return err
	}
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			switch c {
			case 0:
				return fmt.Errorf("%w at byte %d", ErrNUL, i)
			case '+', '#':
				return fmt.Errorf("%w: %q at byte %d", ErrWildcard, c, i)
			}
			i++
			continue
		}
		n, err := checkRune(name, i)
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// ValidFilter reports whether filter may be used as the topic filter of a
// SUBSCRIBE or UNSUBSCRIBE: the length and UTF-8 rules of ValidName, '#' only
// as the whole last level [MQTT-4.7.1-2] and '+' only as a whole level
// [MQTT-4.7.1-3]. A shared subscription "$share/{group}/{filter}" is an
// ordinary valid filter here; ParseShared checks its parts.
func ValidFilter(filter string) error {
	if err := checkLen(filter); err != nil {
		return err
	}
	for i := 0; i < len(filter); {
		c := filter[i]
		if c < utf8.RuneSelf {
			switch c {
			case 0:
				return fmt.Errorf("%w at byte %d", ErrNUL, i)
			case '+':
				if (i > 0 && filter[i-1] != '/') || (i+1 < len(filter) && filter[i+1] != '/') {
					return fmt.Errorf("%w: '+' at byte %d", ErrPlacement, i)
				}
			case '#':
				if (i > 0 && filter[i-1] != '/') || (i+1 < len(filter) && filter[i+1] != '/') {
					return fmt.Errorf("%w: '#' at byte %d", ErrPlacement, i)
				}
				if i+1 < len(filter) {
					return fmt.Errorf("%w: '#' at byte %d", ErrHashNotLast, i)
				}
			}
			i++
			continue
		}
		n, err := checkRune(filter, i)
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

func checkLen(s string) error {
	if len(s) == 0 {
		return ErrEmpty
	}
	if len(s) > MaxLen {
		return fmt.Errorf("%w: %d bytes", ErrTooLong, len(s))
	}
	return nil
}

// checkRune checks the multi-byte sequence at s[i] and returns its length.
// utf8.DecodeRuneInString refuses surrogates and overlong forms, as
// [MQTT-1.5.4-1] requires.
func checkRune(s string, i int) (int, error) {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return 0, fmt.Errorf("%w at byte %d", ErrInvalidUTF8, i)
	}
	return n, nil
}

// ParseShared validates a filter as it arrives in a SUBSCRIBE or UNSUBSCRIBE
// and splits a shared subscription "$share/{group}/{filter}" into its share
// name and topic filter [MQTT-4.8.2]. For a filter that is not shared it
// returns group "" and the filter unchanged. The share name must be at least
// one character [MQTT-4.8.2-1] without '/', '+' or '#', and must be followed
// by '/' and a valid topic filter [MQTT-4.8.2-2]. The results are substrings
// of s.
func ParseShared(s string) (group, filter string, err error) {
	if err := ValidFilter(s); err != nil {
		return "", "", err
	}
	rest, ok := strings.CutPrefix(s, SharePrefix)
	if !ok {
		return "", s, nil
	}
	group, filter, ok = strings.Cut(rest, "/")
	switch {
	case group == "":
		return "", "", fmt.Errorf("%w: empty share name", ErrInvalidShared)
	case strings.ContainsAny(group, "+#"):
		return "", "", fmt.Errorf("%w: wildcard in share name %q", ErrInvalidShared, group)
	case !ok || filter == "":
		return "", "", fmt.Errorf("%w: no topic filter after share name %q", ErrInvalidShared, group)
	}
	return group, filter, nil
}

// Match reports whether the topic name matches the topic filter [MQTT-4.7].
// '+' matches exactly one level, which may be empty; '#' matches the parent
// level and any number of levels below it ("a/#" matches "a", "a/" and
// "a/b/c"). A name beginning with '$' is not matched by a filter whose first
// character is a wildcard [MQTT-4.7.2-1]. Match assumes both arguments are
// valid (ValidFilter, ValidName) and does not allocate. It does not
// interpret "$share/"; pass the filter returned by ParseShared.
func Match(filter, name string) bool {
	if len(name) > 0 && name[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		// Both filter and name start with a level here.
		if filter == "#" {
			return true
		}
		fl, frest, fmore := strings.Cut(filter, "/")
		nl, nrest, nmore := strings.Cut(name, "/")
		if fl != "+" && fl != nl {
			return false
		}
		switch {
		case fmore && nmore:
			filter, name = frest, nrest
		case !fmore && !nmore:
			return true
		case fmore && !nmore:
			// The name ended: only a trailing "/#" still matches
			// ("a/#" matches "a") [MQTT-4.7.1-2].
			return frest == "#"
		default:
			return false
		}
	}
}

// ErrControl is returned by NoControl.
var ErrControl = errors.New("topic: contains a control character")

// NoControl reports a control character U+0001..U+001F or U+007F..U+009F in
// s (U+0000 and ill-formed UTF-8 are ValidName's). The spec lets a receiver
// refuse them [MQTT-1.5.4-2 non-normative]; Mosquitto's broker does, in
// topics, client identifiers and user names. It is separate from ValidName
// so that a client (the uplink) can still take them from a server that sends
// them.
func NoControl(s string) error {
	for i, r := range s {
		if (r >= 0x01 && r <= 0x1F) || (r >= 0x7F && r <= 0x9F) {
			return fmt.Errorf("%w: %U at byte %d", ErrControl, r, i)
		}
	}
	return nil
}
