package topic

import "iter"

// children maps a level to a child node. Most nodes of a topic tree have a
// handful of children (a vehicle's "telemetry", "cmd", "status"), where a
// slice is smaller than a map and as fast to search; a few have thousands
// (the vehicle ids under "vehicles"), which get a map.
type children[T any] struct {
	small []child[T]    // while len <= smallChildren
	big   map[string]*T // afterwards; small is then nil
}

type child[T any] struct {
	level string
	node  *T
}

const smallChildren = 8

func (c *children[T]) len() int { return len(c.small) + len(c.big) }

func (c *children[T]) get(level string) *T {
	if c.big != nil {
		return c.big[level]
	}
	for i := range c.small {
		if c.small[i].level == level {
			return c.small[i].node
		}
	}
	return nil
}

// add adds a child for a level that has none.
func (c *children[T]) add(level string, n *T) {
	if c.big != nil {
		c.big[level] = n
		return
	}
	if len(c.small) < smallChildren {
		c.small = append(c.small, child[T]{level, n})
		return
	}
	c.big = make(map[string]*T, 2*smallChildren)
	for _, x := range c.small {
		c.big[x.level] = x.node
	}
	c.big[level] = n
	c.small = nil
}

func (c *children[T]) del(level string) {
	if c.big != nil {
		delete(c.big, level)
		if len(c.big) <= smallChildren/2 {
			c.small = make([]child[T], 0, smallChildren)
			for l, n := range c.big {
				c.small = append(c.small, child[T]{l, n})
			}
			c.big = nil
		}
		return
	}
	for i := range c.small {
		if c.small[i].level == level {
			last := len(c.small) - 1
			c.small[i] = c.small[last]
			c.small[last] = child[T]{}
			c.small = c.small[:last]
			if last == 0 {
				c.small = nil
			}
			return
		}
	}
}

// all yields every child, in unspecified order.
func (c *children[T]) all() iter.Seq2[string, *T] {
	return func(yield func(string, *T) bool) {
		for _, x := range c.small {
			if !yield(x.level, x.node) {
				return
			}
		}
		for l, n := range c.big {
			if !yield(l, n) {
				return
			}
		}
	}
}
