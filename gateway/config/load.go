package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a configuration, with where it is.
// Validate and Load return problems joined with errors.Join; use errors.As
// to get at one.
type Problem struct {
	File    string // file name as given to Load; "" for a Config built in code
	Line    int    // 1-based; 0 when unknown
	Subject string // `device "seat_driver"`, `bus "rs485"`; "" for top-level keys
	Path    string // key path within the subject: points[3].scale, broker.listen
	Msg     string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Subject != "" {
		b.WriteString(p.Subject + ": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Load reads, expands and decodes the file at path and applies the
// defaults. It does not validate: call Validate. Every problem found while
// decoding (unknown keys, wrong types, unset variables) is returned joined.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on data already read; name is used in error messages and
// lookup resolves ${VAR} references.
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	text, probs := expandEnv(data, lookup)
	for _, p := range probs {
		p.File = name
	}
	if len(probs) > 0 {
		return nil, join(probs)
	}
	c := &Config{pos: scanPositions(text)}
	c.pos.file = name
	md, err := toml.Decode(text, c)
	if err != nil {
		p := &Problem{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.Line, p.Msg = pe.Position.Line, pe.Message
			if path := c.pos.atLine(p.Line); path != "" {
				p.Subject, p.Path = c.pos.subject(path)
			} else if pe.LastKey != "" {
				p.Path = pe.LastKey
			}
		}
		return nil, p
	}
	var probs2 []*Problem
	seen := map[string]bool{}
	for _, k := range md.Undecoded() {
		if seen[k.String()] {
			continue // one key per occurrence; unknown reports them all
		}
		seen[k.String()] = true
		if len(k) >= 2 && (k[0] == "device" || k[0] == "simulator") && k[1] == "options" {
			continue // the driver's own, checked when it decodes them
		}
		probs2 = append(probs2, c.pos.unknown(k)...)
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		d.Decode = c.pos.decoder(md, d.Options, fmt.Sprintf("device[%d].options", i), fmt.Sprintf("device %q", d.Name))
	}
	for i := range c.Simulators {
		s := &c.Simulators[i]
		s.Decode = c.pos.decoder(md, s.Options, fmt.Sprintf("simulator[%d].options", i), fmt.Sprintf("simulator %q", s.Name))
	}
	c.SetDefaults()
	if len(probs2) > 0 {
		// Report the other problems of the file too, all at once.
		if err := c.Validate(); err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				if p, ok := e.(*Problem); ok {
					probs2 = append(probs2, p)
				}
			}
		}
		slices.SortStableFunc(probs2, func(a, b *Problem) int { return a.Line - b.Line })
		return nil, join(probs2)
	}
	return c, nil
}

func join(probs []*Problem) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$\{[^}]*\}?`)

// expandEnv replaces ${NAME} and ${NAME:-default} outside comments ($${ is
// a literal ${). A value is inserted verbatim, so it may not contain a
// quote, a backslash or a line break.
func expandEnv(data []byte, lookup func(string) (string, bool)) (string, []*Problem) {
	var out strings.Builder
	var probs []*Problem
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		code, comment := splitComment(string(line))
		code = envRef.ReplaceAllStringFunc(code, func(ref string) string {
			if ref == "$${" {
				return "${"
			}
			m := envRef.FindStringSubmatch(ref)
			if m[1] == "" {
				probs = append(probs, &Problem{Line: i + 1, Msg: fmt.Sprintf("bad variable reference %q: want ${NAME} or ${NAME:-default}", ref)})
				return ref
			}
			v, ok := lookup(m[1])
			if (!ok || v == "") && m[2] != "" {
				v, ok = m[3], true
			}
			if !ok {
				probs = append(probs, &Problem{Line: i + 1, Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", m[1], m[1])})
				return ref
			}
			if strings.ContainsAny(v, "\"\\\n\r") {
				probs = append(probs, &Problem{Line: i + 1, Msg: fmt.Sprintf("environment variable %s: value may not contain a quote, backslash or line break", m[1])})
				return ref
			}
			return v
		})
		out.WriteString(code)
		out.WriteString(comment)
	}
	return out.String(), probs
}

// splitComment splits a line at a # that is not inside a one-line string.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == 0 && c == '#':
			return line[:i], line[i:]
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	return line, ""
}

// decoder returns the Decode function of one options table. The table is
// taken out of md now (MetaData is not safe for concurrent use, and
// devices are built concurrently); each call re-encodes it and decodes it
// on its own, so that the driver's unknown keys are found per device
// (toml.MetaData keys carry no array index). Decode is safe for concurrent
// use.
func (ps *positions) decoder(md toml.MetaData, prim toml.Primitive, prefix, subject string) func(any) error {
	var m map[string]any
	perr := md.PrimitiveDecode(prim, &m)
	var text string
	if perr == nil && len(m) > 0 {
		var buf bytes.Buffer
		perr = toml.NewEncoder(&buf).Encode(m)
		text = buf.String()
	}
	return func(v any) error {
		if perr != nil {
			return ps.problem(prefix, subject, "options", perr.Error())
		}
		md2, err := toml.Decode(text, v)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "toml: ")
			path := "options"
			var pe toml.ParseError
			if errors.As(err, &pe) {
				msg = pe.Message
				if pe.LastKey != "" {
					path = indexPath(m, strings.Split(pe.LastKey, "."))
				}
			}
			return ps.problem(prefix, subject, path, msg)
		}
		var errs []error
		for _, k := range md2.Undecoded() {
			errs = append(errs, ps.problem(prefix, subject, indexPath(m, k), "unknown key"))
		}
		return errors.Join(errs...)
	}
}

// indexPath turns an unindexed key (points.scale) into the path of its
// first occurrence in m (points[3].scale).
func indexPath(m map[string]any, key []string) string {
	var b strings.Builder
	var cur any = m
	for i, k := range key {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
		tm, _ := cur.(map[string]any)
		cur = tm[k]
		if arr, ok := cur.([]map[string]any); ok && i+1 < len(key) {
			for j, e := range arr {
				if _, ok := e[key[i+1]]; ok {
					fmt.Fprintf(&b, "[%d]", j)
					cur = e
					break
				}
			}
		}
	}
	return b.String()
}

// problem makes a Problem for path inside the table at prefix.
func (ps *positions) problem(prefix, subject, path, msg string) *Problem {
	return &Problem{File: ps.file, Line: ps.line(prefix + "." + path), Subject: subject, Path: path, Msg: msg}
}

// DeviceProblems returns a Problem for a driver's error about device i's
// options: the error's key path (e.g. points[3].scale, taken from the start
// of its text) is looked up to give the file line. Every error joined in
// err gives one Problem.
func (c *Config) DeviceProblems(i int, err error) []*Problem {
	return c.optionProblems(fmt.Sprintf("device[%d].options", i), fmt.Sprintf("device %q", c.Devices[i].Name), err)
}

// SimulatorProblems is DeviceProblems for simulator i.
func (c *Config) SimulatorProblems(i int, err error) []*Problem {
	return c.optionProblems(fmt.Sprintf("simulator[%d].options", i), fmt.Sprintf("simulator %q", c.Simulators[i].Name), err)
}

var (
	leadingPath  = regexp.MustCompile(`^([a-z_][a-z0-9_]*(\[\d+\])*(\.[a-z_][a-z0-9_]*(\[\d+\])*)*): (.*)$`)
	driverPrefix = regexp.MustCompile(`^([a-z0-9_]+ "[^"]*": |options: )+`)
)

// optionProblems turns a driver's error about the options at prefix into
// Problems: the Problems Decode made are kept; every other line of the
// error text, stripped of the driver's `kind "name": options: ` prefix,
// gives one Problem whose leading key path finds its line.
func (c *Config) optionProblems(prefix, subject string, err error) []*Problem {
	if err == nil {
		return nil
	}
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	walk(err)
	ps := c.pos
	if ps == nil {
		ps = &positions{}
	}
	known := len(out)
lines:
	for _, line := range strings.Split(err.Error(), "\n") {
		for _, p := range out[:known] {
			if strings.HasSuffix(line, p.Error()) {
				continue lines
			}
		}
		line = driverPrefix.ReplaceAllString(line, "")
		if line == "" {
			continue
		}
		if m := leadingPath.FindStringSubmatch(line); m != nil {
			out = append(out, ps.problem(prefix, subject, m[1], m[5]))
			continue
		}
		out = append(out, &Problem{File: ps.file, Line: ps.line(prefix), Subject: subject, Msg: line})
	}
	return out
}

// Problemf returns a Problem about the key at path, an indexed path such
// as device[2].kind, with its line when c came from Load.
func (c *Config) Problemf(path, format string, args ...any) *Problem {
	v := &validator{c: c}
	v.add(path, format, args...)
	return v.probs[0]
}

// File returns the path the configuration was loaded from, "" for one
// built in code.
func (c *Config) File() string {
	if c.pos == nil {
		return ""
	}
	return c.pos.file
}
