package topic

import (
	"strings"
	"sync"
)

// Names is a set of topic names, each with a value, that can be searched by
// topic filter: the index of a broker's retained messages, where a new
// subscription must find every retained name its filter matches without
// scanning them all [MQTT-3.3.1-9]. Match visits only the branches of the
// tree the filter can reach.
//
// The zero Names is empty and ready to use. Names is safe for concurrent
// use: Get, Match and All take a read lock and run in parallel; Set and
// Delete take the write lock. A Names must not be copied after first use.
type Names[V any] struct {
	// mu guards root and n.
	mu   sync.RWMutex
	root nameNode[V]
	n    int
}

// Entry is a topic name and its value, as returned by Names.Match.
type Entry[V any] struct {
	Name  string
	Value V
}

type nameNode[V any] struct {
	children children[nameNode[V]]
	name     string // the whole topic name while set
	set      bool
	value    V
}

// Set stores v under name and reports whether it replaced a value. name
// should be a valid topic name (ValidName): one containing wildcards is
// stored literally and Match treats its '+' and '#' levels as plain text.
func (s *Names[V]) Set(name string, v V) (replaced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var owned string // a private copy of name, made only if needed
	n := &s.root
	for rest := name; ; {
		level, r, more := strings.Cut(rest, "/")
		c := n.children.get(level)
		if c == nil {
			if owned == "" {
				owned = strings.Clone(name)
			}
			off := len(name) - len(rest)
			c = new(nameNode[V])
			n.children.add(owned[off:off+len(level)], c)
		}
		n = c
		if !more {
			break
		}
		rest = r
	}
	n.value = v
	if n.set {
		return true
	}
	if owned == "" {
		owned = strings.Clone(name)
	}
	n.name, n.set = owned, true
	s.n++
	return false
}

// Get returns the value stored under name.
func (s *Names[V]) Get(name string) (v V, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := &s.root
	for rest := name; ; {
		level, r, more := strings.Cut(rest, "/")
		if n = n.children.get(level); n == nil {
			return v, false
		}
		if !more {
			return n.value, n.set
		}
		rest = r
	}
}

// Delete removes name and reports whether it was there. Nodes left empty are
// freed.
func (s *Names[V]) Delete(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.root.remove(name) {
		return false
	}
	s.n--
	return true
}

func (n *nameNode[V]) remove(name string) bool {
	level, rest, more := strings.Cut(name, "/")
	c := n.children.get(level)
	if c == nil {
		return false
	}
	if more {
		if !c.remove(rest) {
			return false
		}
	} else {
		if !c.set {
			return false
		}
		var zero V
		c.value, c.name, c.set = zero, "", false
	}
	if !c.set && c.children.len() == 0 {
		n.children.del(level)
	}
	return true
}

// Len returns the number of names in the set.
func (s *Names[V]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// Match appends to dst every name matched by the topic filter (by the rules
// of the function Match, including [MQTT-4.7.2-1] for names beginning with
// '$') and returns the extended slice. The order is unspecified. filter must
// be a valid filter without the "$share/{group}/" prefix (ParseShared).
func (s *Names[V]) Match(filter string, dst []Entry[V]) []Entry[V] {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.root.match(filter, true, dst)
}

// All appends every name in the set to dst, in unspecified order, including
// names beginning with '$'.
func (s *Names[V]) All(dst []Entry[V]) []Entry[V] {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.root.appendTree(dst, false)
}

// match appends the names below n matched by filter, which holds the levels
// still to match (at least one). root is true at the tree's root, where
// wildcards skip names beginning with '$' [MQTT-4.7.2-1].
func (n *nameNode[V]) match(filter string, root bool, dst []Entry[V]) []Entry[V] {
	for {
		level, rest, more := strings.Cut(filter, "/")
		switch level {
		case "#":
			// "#" matches the parent level too: "a/#" matches "a"
			// [MQTT-4.7.1-2]. The root holds no name.
			if n.set {
				dst = append(dst, Entry[V]{n.name, n.value})
			}
			return n.appendTree(dst, root)
		case "+":
			for k, c := range n.children.all() {
				if root && strings.HasPrefix(k, "$") {
					continue
				}
				if more {
					dst = c.match(rest, false, dst)
				} else if c.set {
					dst = append(dst, Entry[V]{c.name, c.value})
				}
			}
			return dst
		}
		c := n.children.get(level)
		if c == nil {
			return dst
		}
		if !more {
			if c.set {
				dst = append(dst, Entry[V]{c.name, c.value})
			}
			return dst
		}
		n, filter, root = c, rest, false
	}
}

// appendTree appends every name below n, skipping the branches whose level
// begins with '$' when skipDollar is set.
func (n *nameNode[V]) appendTree(dst []Entry[V], skipDollar bool) []Entry[V] {
	for k, c := range n.children.all() {
		if skipDollar && strings.HasPrefix(k, "$") {
			continue
		}
		if c.set {
			dst = append(dst, Entry[V]{c.name, c.value})
		}
		dst = c.appendTree(dst, false)
	}
	return dst
}
