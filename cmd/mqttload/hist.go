package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: exact below
// 64 µs, then 32 buckets per power of two (about 3 % resolution). It is
// fixed-size, so recording never allocates. Not safe for concurrent use:
// each subscriber owns one and they are merged at the end.
type hist struct {
	counts [histBuckets]int64
	n      int64
	max    int64 // µs
}

const (
	histSub     = 32 // buckets per power of two
	histLinear  = 2 * histSub
	histBuckets = histLinear + 40*histSub
)

func histIndex(us int64) int {
	if us < histLinear {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	shift := bits.Len64(uint64(us)) - 6 // us>>shift is in [32, 63]
	i := histLinear + (shift-1)*histSub + int(us>>shift) - histSub
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i, in µs.
func histValue(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := int64((i-histLinear)%histSub + histSub)
	return m<<shift + int64(1)<<shift/2
}

func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	h.counts[histIndex(us)]++
	h.n++
	h.max = max(h.max, us)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q <= 1) in µs; 0 when empty.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n) + 0.999999)
	rank = max(1, min(rank, h.n))
	var cum int64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return min(histValue(i), h.max)
		}
	}
	return h.max
}
