package packet

import (
	"bufio"
	"errors"
)

var errTODO = errors.New("packet: not implemented yet")

func readFixedHeader(r *bufio.Reader, maxSize int) (FixedHeader, error) {
	return FixedHeader{}, errTODO
}
func read(r *bufio.Reader, v Version, maxSize int) (Packet, error) { return nil, errTODO }
func decode(h FixedHeader, body []byte, v Version, alias bool) (Packet, error) {
	return nil, errTODO
}
func appendPacket(dst []byte, p Packet, v Version) ([]byte, error) { return dst, errTODO }
func remainingLen(p Packet, v Version) (int, error)                { return 0, errTODO }
func vbiLen(n uint32) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	}
	return 4
}
