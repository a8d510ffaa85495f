package packet_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func ExampleAppend() {
	buf := make([]byte, 0, 512) // reused for every packet
	pub := &packet.Publish{Topic: "vehicles/1/telemetry/tpms", Payload: []byte(`{"seq":1}`), QoS: 1, PacketID: 7,
		Props: packet.Properties{PayloadFormat: 1, MessageExpiry: 3600, HasMessageExpiry: true}}
	buf, err := packet.Append(buf[:0], pub, packet.V5)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes, first %#x\n", len(buf), buf[0])
	// Output: 48 bytes, first 0x32
}

func ExampleRead() {
	// A PUBLISH with QoS 3: malformed [MQTT-3.3.1-4].
	r := bufio.NewReader(bytes.NewReader([]byte{0x36, 7, 0, 3, 'a', '/', 'b', 0, 1}))
	_, err := packet.Read(r, packet.V5, 1<<20)
	var re *packet.ReasonError
	if errors.As(err, &re) {
		// Send DISCONNECT with re.Code, then close.
		fmt.Printf("%#x %v; malformed: %v\n", byte(re.Code), re.Code, errors.Is(err, packet.ErrMalformed))
	}
	// Output: 0x81 malformed packet; malformed: true
}
