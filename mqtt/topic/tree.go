package topic

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Tree is a subscription tree: a trie of topic filters, one level per node,
// each filter holding the subscriptions made to it. K identifies a
// subscriber (a client identifier or a session pointer); V is what the
// subscriber asked for (QoS, no local, retain as published, subscription
// identifier, a delivery callback, …). Match copies V into its results, so
// V should be small: a few words or a pointer.
//
// A subscriber holds at most one subscription per filter, and at most one
// per filter and share name for shared subscriptions: subscribing again
// replaces the value [MQTT-3.8.4-3].
//
// The zero Tree is empty and ready to use. A Tree is safe for concurrent use:
// Match takes a read lock, so any number of matches run in parallel and wait
// only for a Subscribe or Unsubscribe in progress; those take the write lock
// for a time proportional to the filter's number of levels. No callback runs
// under the lock. A Tree must not be copied after first use.
type Tree[K comparable, V any] struct {
	// mu guards root and n.
	mu   sync.RWMutex
	root node[K, V]
	n    int
}

// Sub is one subscription returned by Tree.Match.
type Sub[K comparable, V any] struct {
	// Filter is the topic filter as subscribed, without the
	// "$share/{group}/" prefix of a shared subscription. It is shared with
	// the tree and with every other Sub of the same filter; comparing
	// Filter and Group tells whether two Subs are the same subscription.
	Filter string
	// Group is the share name of a shared subscription, "" otherwise.
	Group string
	Key   K
	Value V
}

type node[K comparable, V any] struct {
	children children[node[K, V]] // literal levels
	plus     *node[K, V]          // the level "+"
	hash     *node[K, V]          // the level "#"; it has no children
	// filter is the whole topic filter ending at this node while it has
	// subscriptions, "" otherwise.
	filter string
	subs   list[K, V]
	shared []*group[K, V] // in order of creation
}

// group is the set of members of one shared subscription: one filter, one
// share name [MQTT-4.8.2].
type group[K comparable, V any] struct {
	name string
	next atomic.Uint32 // round-robin cursor of Match
	subs list[K, V]
}

// Subscribe adds the subscription of key to filter with value v, or replaces
// the value when key already subscribed to filter. A filter of the form
// "$share/{group}/{filter}" adds key as a member of the shared subscription
// named group (ParseShared), whatever the client's protocol version, as
// Mosquitto does. replaced tells the broker whether the
// subscription existed before, as retain handling 1 needs [MQTT-3.3.1-10].
// An invalid filter leaves the tree unchanged and returns the error of
// ParseShared.
func (t *Tree[K, V]) Subscribe(filter string, key K, v V) (replaced bool, err error) {
	groupName, f, err := ParseShared(filter)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// owned is a private copy of f, made only when the tree must keep a
	// part of it, so that the tree never pins a caller's packet buffer.
	var owned string
	n := &t.root
	for rest := f; ; {
		level, r, more := strings.Cut(rest, "/")
		var c *node[K, V]
		switch level {
		case "+":
			if n.plus == nil {
				n.plus = new(node[K, V])
			}
			c = n.plus
		case "#":
			if n.hash == nil {
				n.hash = new(node[K, V])
			}
			c = n.hash
		default:
			c = n.children.get(level)
			if c == nil {
				if owned == "" {
					owned = strings.Clone(f)
				}
				off := len(f) - len(rest)
				c = new(node[K, V])
				n.children.add(owned[off:off+len(level)], c)
			}
		}
		n = c
		if !more {
			break
		}
		rest = r
	}
	if n.filter == "" {
		if owned == "" {
			owned = strings.Clone(f)
		}
		n.filter = owned
	}
	if groupName == "" {
		replaced = n.subs.set(key, v)
	} else {
		var g *group[K, V]
		for _, x := range n.shared {
			if x.name == groupName {
				g = x
				break
			}
		}
		if g == nil {
			g = &group[K, V]{name: strings.Clone(groupName)}
			n.shared = append(n.shared, g)
		}
		replaced = g.subs.set(key, v)
	}
	if !replaced {
		t.n++
	}
	return replaced, nil
}

// Unsubscribe removes the subscription of key to filter (which may be a
// shared subscription "$share/{group}/{filter}") and reports whether there
// was one [MQTT-3.10.4-1]. Nodes left empty are freed.
func (t *Tree[K, V]) Unsubscribe(filter string, key K) bool {
	groupName, f, err := ParseShared(filter)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.root.remove(f, groupName, key) {
		return false
	}
	t.n--
	return true
}

func (n *node[K, V]) remove(f, groupName string, key K) bool {
	level, rest, more := strings.Cut(f, "/")
	var c *node[K, V]
	switch level {
	case "+":
		c = n.plus
	case "#":
		c = n.hash
	default:
		c = n.children.get(level)
	}
	if c == nil {
		return false
	}
	var ok bool
	if more {
		ok = c.remove(rest, groupName, key)
	} else {
		ok = c.removeSub(groupName, key)
	}
	if ok && c.empty() {
		switch level {
		case "+":
			n.plus = nil
		case "#":
			n.hash = nil
		default:
			n.children.del(level)
		}
	}
	return ok
}

func (n *node[K, V]) removeSub(groupName string, key K) bool {
	if groupName == "" {
		if !n.subs.del(key) {
			return false
		}
	} else {
		i := 0
		for i < len(n.shared) && n.shared[i].name != groupName {
			i++
		}
		if i == len(n.shared) || !n.shared[i].subs.del(key) {
			return false
		}
		if len(n.shared[i].subs.e) == 0 {
			n.shared = slices.Delete(n.shared, i, i+1)
			if len(n.shared) == 0 {
				n.shared = nil
			}
		}
	}
	if len(n.subs.e) == 0 && len(n.shared) == 0 {
		n.filter = ""
	}
	return true
}

func (n *node[K, V]) empty() bool {
	return n.children.len() == 0 && n.plus == nil && n.hash == nil &&
		len(n.subs.e) == 0 && len(n.shared) == 0
}

// Len returns the number of subscriptions in the tree, counting every member
// of a shared subscription.
func (t *Tree[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Match appends to dst every subscription whose filter matches the topic
// name and returns the extended slice. From each shared subscription it
// appends one member only, chosen round-robin [MQTT-4.8.2]; MatchAll appends
// them all. A name beginning with '$' is not matched by filters beginning
// with a wildcard [MQTT-4.7.2-1].
//
// The order of the results is unspecified. A subscriber whose filters
// overlap appears once per matching filter: the Key tells the broker which
// results to merge into one delivery [MQTT-3.3.4-2]. name must be a valid
// topic name (ValidName). Match does not allocate when dst has room for the
// results, so a caller that keeps dst[:0] for the next call matches without
// allocating.
func (t *Tree[K, V]) Match(name string, dst []Sub[K, V]) []Sub[K, V] {
	return t.match(name, dst, false)
}

// MatchAll is like Match but appends every member of a shared subscription,
// consecutively and each with its Group set, for a broker that picks the
// member itself (for example skipping members whose session is offline).
func (t *Tree[K, V]) MatchAll(name string, dst []Sub[K, V]) []Sub[K, V] {
	return t.match(name, dst, true)
}

func (t *Tree[K, V]) match(name string, dst []Sub[K, V], all bool) []Sub[K, V] {
	if cap(dst) == 0 {
		// One allocation, instead of one per doubling, for a caller
		// without a buffer and up to 8 matches.
		dst = make([]Sub[K, V], 0, 8)
	}
	t.mu.RLock()
	dst = t.root.match(name, len(name) == 0 || name[0] != '$', dst, all)
	t.mu.RUnlock()
	return dst
}

// match appends the subscriptions below n that match name, which holds the
// levels still to match (at least one). wild is false only at the root for
// a name beginning with '$'. It recurses for '+' and iterates along the
// literal path.
func (n *node[K, V]) match(name string, wild bool, dst []Sub[K, V], all bool) []Sub[K, V] {
	for {
		level, rest, more := strings.Cut(name, "/")
		if wild {
			if n.hash != nil {
				dst = n.hash.appendSubs(dst, all)
			}
			if p := n.plus; p != nil {
				if more {
					dst = p.match(rest, true, dst, all)
				} else {
					dst = p.appendLast(dst, all)
				}
			}
		}
		c := n.children.get(level)
		if c == nil {
			return dst
		}
		if !more {
			return c.appendLast(dst, all)
		}
		n, name, wild = c, rest, true
	}
}

// appendLast appends the subscriptions of n, the node of the name's last
// level, and those of "n/#", which matches its parent level [MQTT-4.7.1-2].
func (n *node[K, V]) appendLast(dst []Sub[K, V], all bool) []Sub[K, V] {
	dst = n.appendSubs(dst, all)
	if n.hash != nil {
		dst = n.hash.appendSubs(dst, all)
	}
	return dst
}

func (n *node[K, V]) appendSubs(dst []Sub[K, V], all bool) []Sub[K, V] {
	for i := range n.subs.e {
		e := &n.subs.e[i]
		dst = append(dst, Sub[K, V]{Filter: n.filter, Key: e.key, Value: e.value})
	}
	for _, g := range n.shared {
		if all {
			for i := range g.subs.e {
				e := &g.subs.e[i]
				dst = append(dst, Sub[K, V]{Filter: n.filter, Group: g.name, Key: e.key, Value: e.value})
			}
			continue
		}
		// Groups are removed when their last member leaves, so e is
		// never empty here.
		e := &g.subs.e[(g.next.Add(1)-1)%uint32(len(g.subs.e))]
		dst = append(dst, Sub[K, V]{Filter: n.filter, Group: g.name, Key: e.key, Value: e.value})
	}
	return dst
}

// list is a set of subscriptions keyed by subscriber, kept in a slice for
// fast iteration, with an index once it grows long enough that a linear
// search would make Subscribe slow (thousands of clients on "fleet/#").
type list[K comparable, V any] struct {
	e   []entry[K, V]
	idx map[K]int // nil while len(e) <= indexAt
}

type entry[K comparable, V any] struct {
	key   K
	value V
}

const indexAt = 16

func (l *list[K, V]) find(k K) int {
	if l.idx != nil {
		if i, ok := l.idx[k]; ok {
			return i
		}
		return -1
	}
	for i := range l.e {
		if l.e[i].key == k {
			return i
		}
	}
	return -1
}

// set adds or replaces the value of k and reports whether it replaced one.
func (l *list[K, V]) set(k K, v V) bool {
	if i := l.find(k); i >= 0 {
		l.e[i].value = v
		return true
	}
	l.e = append(l.e, entry[K, V]{k, v})
	switch {
	case l.idx != nil:
		l.idx[k] = len(l.e) - 1
	case len(l.e) > indexAt:
		l.idx = make(map[K]int, len(l.e))
		for i := range l.e {
			l.idx[l.e[i].key] = i
		}
	}
	return false
}

// del removes k and reports whether it was there. The last entry moves into
// the hole, so the order of a list is not stable.
func (l *list[K, V]) del(k K) bool {
	i := l.find(k)
	if i < 0 {
		return false
	}
	last := len(l.e) - 1
	if i != last {
		l.e[i] = l.e[last]
		if l.idx != nil {
			l.idx[l.e[i].key] = i
		}
	}
	l.e[last] = entry[K, V]{} // drop references for the collector
	l.e = l.e[:last]
	if l.idx != nil {
		delete(l.idx, k)
		if len(l.e) <= indexAt/2 {
			l.idx = nil
		}
	}
	switch {
	case len(l.e) == 0:
		l.e = nil
	case cap(l.e) > 2*indexAt && len(l.e) < cap(l.e)/4:
		l.e = append([]entry[K, V](nil), l.e...)
	}
	return true
}
