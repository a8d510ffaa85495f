package broker

import (
	"net"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func TestSilentSocketsStayInTheKernel(t *testing.T) {
	// Row 4 and 5 of issue 13: with TCP_DEFER_ACCEPT on the broker's own
	// listeners, sockets that send nothing are not accepted at all (no
	// file descriptor, no pending slot), while a client that sends
	// CONNECT is.
	s := newServer(t, Options{Listen: "127.0.0.1:0"})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	addr := s.Addr("tcp").String()
	for range 200 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	c := tcpClient(t, addr, packet.V311)
	if ack := c.connack(&packet.Connect{ClientID: "ops", CleanStart: true}); ack.Code != packet.Success {
		t.Fatalf("CONNACK %v", ack.Code)
	}
	if n := s.Stats().ConnectionsTotal; n != 1 {
		t.Errorf("%d connections accepted, want only the one that sent CONNECT", n)
	}
}
