package broker

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and returns
// their paths and a client certificate with common name cn.
func testPKI(t *testing.T, cn string) (caFile, certFile, keyFile string, client tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(name string, server bool) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600)
		return p
	}
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := issue("server", true)
	certFile = write("server.pem", "CERTIFICATE", sDER)
	kb, _ := x509.MarshalECPrivateKey(sKey)
	keyFile = write("server.key", "EC PRIVATE KEY", kb)
	cDER, cKey := issue(cn, false)
	client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	return
}

func TestTLSClientCertificate(t *testing.T) {
	// mTLS: the certificate's common name is the user name, so the ACL
	// applies to it.
	caFile, cert, key, clientCert, pool := testPKI(t, "dashboard")
	s := newServer(t, Options{TLSListen: "127.0.0.1:0", TLSCert: cert, TLSKey: key, TLSClientCA: caFile,
		ACL: []ACLRule{{User: "dashboard", Permission: "allow", Action: "all", Topic: "dash/#"}}})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	addr := s.Addr("tls").String()
	nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &tclient{t: t, nc: nc, r: bufio.NewReader(nc), v: packet.V5}
	if ack := c.connack(&packet.Connect{ClientID: "d", CleanStart: true}); ack.Code != packet.Success {
		t.Fatalf("CONNACK %v", ack.Code)
	}
	if sa := c.subscribe(1, sub("dash/x", 0), sub("other", 0)); sa.Codes[0] != 0 || sa.Codes[1] != 0x80 {
		t.Errorf("SUBACK %v, want [0 0x80]", sa.Codes)
	}
	// Without a client certificate the handshake fails.
	bad, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err == nil {
		bad.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = bad.Read(make([]byte, 1))
		bad.Close()
	}
	if err == nil {
		t.Error("connection without a client certificate accepted")
	}
}

func TestWebSocket(t *testing.T) {
	s := newServer(t, Options{WSListen: "127.0.0.1:0", AllowAnonymous: ptr(true)})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe() }()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws://"+s.Addr("ws").String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ws.Subprotocol() != "mqtt" {
		t.Errorf("subprotocol %q", ws.Subprotocol())
	}
	// A CONNECT split across two frames [MQTT-6.0.0-2].
	b, _ := packet.Append(nil, &packet.Connect{ClientID: "w", CleanStart: true, Version: packet.V311}, packet.V311)
	ws.WriteMessage(websocket.BinaryMessage, b[:5])
	ws.WriteMessage(websocket.BinaryMessage, b[5:])
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) != 4 || msg[0] != 0x20 || msg[3] != 0 {
		t.Fatalf("CONNACK % x %v", msg, err)
	}
	s.Shutdown(context.Background())
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe = %v, want ErrServerClosed", err)
	}
}

// TestWebSocketHeaderBound: an upgrade request whose header is above
// wsMaxHeaderBytes is answered 431 without being read on (net/http's
// default would buffer up to 1 MiB per connection).
func TestWebSocketHeaderBound(t *testing.T) {
	s := newServer(t, Options{WSListen: "127.0.0.1:0", AllowAnonymous: ptr(true)})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	h := http.Header{"X-Pad": {strings.Repeat("x", 64<<10)}}
	_, resp, err := d.Dial("ws://"+s.Addr("ws").String()+"/mqtt", h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %v, %+v; want 431", err, resp)
	}
}

// TestSecureWebSocket: MQTT over WebSocket behind TLS, with client
// certificates: the certificate's common name is the user name, as on the
// TLS listener, and a client without one is refused.
func TestSecureWebSocket(t *testing.T) {
	caFile, cert, key, clientCert, pool := testPKI(t, "dashboard")
	s := newServer(t, Options{WSSListen: "127.0.0.1:0", TLSCert: cert, TLSKey: key, TLSClientCA: caFile,
		ACL: []ACLRule{{User: "dashboard", Permission: "allow", Action: "all", Topic: "dash/#"}}})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	url := "wss://" + s.Addr("wss").String() + "/mqtt"
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wsConn{ws: ws}
	defer wc.Close()
	c := &tclient{t: t, nc: wc, r: bufio.NewReader(wc), v: packet.V5}
	if ack := c.connack(&packet.Connect{ClientID: "d", CleanStart: true}); ack.Code != packet.Success {
		t.Fatalf("CONNACK %v", ack.Code)
	}
	if sa := c.subscribe(1, sub("dash/x", 0), sub("other", 0)); sa.Codes[0] != 0 || sa.Codes[1] != 0x80 {
		t.Errorf("SUBACK %v, want [0 0x80]", sa.Codes)
	}
	d.TLSClientConfig = &tls.Config{RootCAs: pool}
	if ws, _, err := d.Dial(url, nil); err == nil {
		ws.Close()
		t.Error("connection without a client certificate accepted")
	}
}

// challenge is an EnhancedAuth that wants the client to answer "pong" to
// "ping".
type challenge struct{}

func (challenge) Auth(method, clientID string, step int, data []byte) ([]byte, string, bool, error) {
	switch {
	case method != "ping-pong":
		return nil, "", false, ErrBadAuthMethod
	case step == 0:
		return []byte("ping"), "", false, nil
	case string(data) == "pong":
		return []byte("ok"), "user-" + clientID, true, nil
	}
	return nil, "", false, errors.New("wrong answer")
}

func TestEnhancedAuth(t *testing.T) {
	// [MQTT-4.12]: AUTH 0x18 exchange before CONNACK.
	s := newServer(t, Options{EnhancedAuth: challenge{}})
	c := pipe(t, s, packet.V5)
	c.send(&packet.Connect{Version: packet.V5, ClientID: "e", CleanStart: true,
		Props: packet.Properties{AuthMethod: "ping-pong"}})
	a, ok := c.recv().(*packet.Auth)
	if !ok || a.Code != packet.ContinueAuthentication || string(a.Props.AuthData) != "ping" {
		t.Fatalf("got %+v, want AUTH continue ping", a)
	}
	c.send(&packet.Auth{Code: packet.ContinueAuthentication, Props: packet.Properties{AuthMethod: "ping-pong", AuthData: []byte("pong")}})
	ack, ok := c.recv().(*packet.Connack)
	if !ok || ack.Code != packet.Success || string(ack.Props.AuthData) != "ok" {
		t.Fatalf("got %+v, want CONNACK success", ack)
	}
	// Unknown method: CONNACK 0x8C.
	c2 := pipe(t, s, packet.V5)
	if ack := c2.connack(&packet.Connect{ClientID: "f", CleanStart: true, Props: packet.Properties{AuthMethod: "x"}}); ack.Code != packet.BadAuthenticationMethod {
		t.Errorf("CONNACK %v, want 0x8C", ack.Code)
	}
}

func TestSys(t *testing.T) {
	s := newServer(t, Options{SysInterval: time.Hour})
	c := connect(t, s, packet.V311, "a", true)
	c.subscribe(1, sub("$SYS/broker/clients/connected", 0))
	if got := c.recvPub(); string(got.Payload) != "0" && string(got.Payload) != "1" {
		t.Errorf("clients/connected = %q", got.Payload)
	}
	s.publishSys()
	if got := c.recvPub(); string(got.Payload) != "1" {
		t.Errorf("clients/connected = %q, want 1", got.Payload)
	}
}
