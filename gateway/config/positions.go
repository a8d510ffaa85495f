package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// positions records the line of every key path in a file. toml.MetaData
// has no public key positions and its keys carry no array indexes, so the
// file is scanned once, line by line, for table headers and keys. The scan
// only has to be right for valid TOML (the decoder reports everything
// else) and may miss keys inside multi-line values, which then take the
// line of their parent.
type positions struct {
	file  string
	lines map[string]int      // indexed path (device[2].options.points[3].scale) → line
	plain map[string][]string // unindexed path (device.options) → indexed paths in file order
	names map[string]string   // device[2] → `device "seat_driver"`
}

var (
	headerRE = regexp.MustCompile(`^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*$`)
	keyRE    = regexp.MustCompile(`^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=\s*(.*)$`)
	inlineRE = regexp.MustCompile(`([A-Za-z0-9_-]+)\s*=`)
)

func scanPositions(text string) *positions {
	ps := &positions{lines: map[string]int{}, plain: map[string][]string{}, names: map[string]string{}}
	arrays := map[string]bool{} // unindexed paths of arrays of tables
	counts := map[string]int{}  // indexed path of an array of tables → elements so far
	table := ""                 // indexed path of the current table
	var inArray string          // indexed key of an open multi-line array value
	var elem int
	var inString string // closing delimiter of an open multi-line string
	for n, raw := range strings.Split(text, "\n") {
		line := n + 1
		if inString != "" {
			if strings.Contains(raw, inString) {
				inString = ""
			}
			continue
		}
		code, _ := splitComment(raw)
		if inArray != "" {
			t := strings.TrimSpace(code)
			if strings.HasPrefix(t, "{") {
				p := fmt.Sprintf("%s[%d]", inArray, elem)
				ps.add(p, line)
				for _, m := range inlineRE.FindAllStringSubmatch(t, -1) {
					ps.add(p+"."+m[1], line)
				}
				elem++
			}
			if strings.HasPrefix(t, "]") || strings.HasSuffix(t, "]") && !strings.HasSuffix(t, "}]") && strings.Count(t, "[") < strings.Count(t, "]") {
				inArray = ""
			}
			continue
		}
		if m := headerRE.FindStringSubmatch(code); m != nil {
			keys := splitKey(m[2])
			indexed, plain := "", ""
			for i, k := range keys {
				if i > 0 {
					indexed += "."
					plain += "."
				}
				indexed += k
				plain += k
				if i == len(keys)-1 && m[1] == "[[" {
					arrays[plain] = true
					idx := counts[indexed]
					counts[indexed]++
					indexed = fmt.Sprintf("%s[%d]", indexed, idx)
				} else if arrays[plain] {
					indexed = fmt.Sprintf("%s[%d]", indexed, max(counts[indexed]-1, 0))
				}
			}
			table = indexed
			ps.add(table, line)
			continue
		}
		m := keyRE.FindStringSubmatch(code)
		if m == nil {
			continue
		}
		path := strings.Join(splitKey(m[1]), ".")
		if table != "" {
			path = table + "." + path
		}
		ps.add(path, line)
		val := strings.TrimSpace(m[2])
		if e := elemRE.FindStringSubmatch(path); e != nil && e[3] == "name" {
			if name, err := strconv.Unquote(strings.TrimSpace(val)); err == nil {
				ps.names[e[1]+"["+e[2]+"]"] = fmt.Sprintf("%s %q", e[1], name)
			}
		}
		switch {
		case strings.HasPrefix(val, `"""`) && strings.Count(val, `"""`) == 1:
			inString = `"""`
		case strings.HasPrefix(val, `'''`) && strings.Count(val, `'''`) == 1:
			inString = `'''`
		case strings.HasPrefix(val, "[") && strings.Count(val, "[") > strings.Count(val, "]"):
			inArray, elem = path, 0
		case strings.HasPrefix(val, "[") && strings.HasPrefix(strings.TrimSpace(val[1:]), "{"):
			// one-line array of inline tables
			for i, part := range strings.Split(val, "}")[:max(strings.Count(val, "}"), 0)] {
				p := fmt.Sprintf("%s[%d]", path, i)
				ps.add(p, line)
				for _, km := range inlineRE.FindAllStringSubmatch(part, -1) {
					ps.add(p+"."+km[1], line)
				}
			}
		case strings.HasPrefix(val, "{"):
			for _, km := range inlineRE.FindAllStringSubmatch(val, -1) {
				ps.add(path+"."+km[1], line)
			}
		}
	}
	return ps
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

func (ps *positions) add(path string, line int) {
	if _, ok := ps.lines[path]; ok {
		return
	}
	ps.lines[path] = line
	plain := indexRE.ReplaceAllString(path, "")
	ps.plain[plain] = append(ps.plain[plain], path)
}

// line returns the line of path, or of its nearest ancestor found.
func (ps *positions) line(path string) int {
	if ps == nil {
		return 0
	}
	for path != "" {
		if l, ok := ps.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// unknown returns a Problem for every occurrence of the undecoded key k.
func (ps *positions) unknown(k toml.Key) []*Problem {
	plain := strings.Join(k, ".")
	occ := ps.plain[plain]
	if len(occ) == 0 {
		occ = []string{plain}
	}
	var out []*Problem
	for _, path := range occ {
		subject, rel := ps.subject(path)
		out = append(out, &Problem{File: ps.file, Line: ps.line(path), Subject: subject, Path: rel, Msg: "unknown key"})
	}
	return out
}

var elemRE = regexp.MustCompile(`^(device|bus|simulator)\[(\d+)\]\.?(.*)$`)

// subject splits device[2].interval into `device "name"` and interval
// using the name key found in the file, or `device[2]` when unnamed.
func (ps *positions) subject(path string) (subject, rel string) {
	m := elemRE.FindStringSubmatch(path)
	if m == nil {
		return "", path
	}
	elem := m[1] + "[" + m[2] + "]"
	if n, ok := ps.names[elem]; ok {
		return n, m[3]
	}
	return elem, m[3]
}

// splitKey splits a dotted TOML key, unquoting quoted parts.
func splitKey(s string) []string {
	var out []string
	for s != "" {
		s = strings.TrimSpace(s)
		var part string
		if s != "" && (s[0] == '"' || s[0] == '\'') {
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return append(out, s)
			}
			part, s = s[1:end+1], s[end+2:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				part, s = s, ""
			} else {
				part, s = s[:i], s[i:]
			}
		}
		out = append(out, strings.TrimSpace(part))
		s = strings.TrimPrefix(strings.TrimSpace(s), ".")
	}
	return out
}

// has reports whether path is set in the file.
func (ps *positions) has(path string) bool {
	_, ok := ps.lines[path]
	return ok
}

// atLine returns the deepest key path on line n, or "".
func (ps *positions) atLine(n int) string {
	best := ""
	for p, l := range ps.lines {
		if l == n && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}
