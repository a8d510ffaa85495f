package console

import (
	"math"
	"strconv"
)

// appendFloat writes f with 6 significant digits, null for NaN and ±Inf.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', 6, 64)
}
