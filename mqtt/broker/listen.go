package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

func loadTLS(o Options) (*tls.Config, error) {
	if o.TLSCert == "" || o.TLSKey == "" {
		return nil, errors.New("broker: tls listen needs a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.TLSClientCA != "" {
		pem, err := os.ReadFile(o.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("broker: tls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker: tls client ca %s: no certificate", o.TLSClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certUser is the user name a verified client certificate gives: its
// common name; "" without one (st may be nil).
func certUser(st *tls.ConnectionState) string {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}

// Listen binds every configured listener (Listen, TLSListen, WSListen,
// WSSListen) without serving yet, so that a caller can report readiness;
// Addr then tells the bound addresses. ListenAndServe calls it when needed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.bound != nil {
		return nil
	}
	bound := map[string]net.Listener{}
	for _, l := range []struct{ kind, addr string }{
		{"tcp", s.opts.Listen}, {"tls", s.opts.TLSListen}, {"ws", s.opts.WSListen}, {"wss", s.opts.WSSListen},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := s.listenTCP(l.addr)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			return fmt.Errorf("broker: listen %s %s: %w", l.kind, l.addr, err)
		}
		bound[l.kind] = ln
	}
	s.bound = bound
	return nil
}

// Addr returns the address bound by Listen for "tcp", "tls", "ws" or "wss", nil
// when that listener is not configured or not bound yet.
func (s *Server) Addr(kind string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.bound[kind]; ok {
		return l.Addr()
	}
	return nil
}

// ListenAndServe listens on every configured address (Listen, TLSListen,
// WSListen, WSSListen) and serves them all until Shutdown, when it returns
// ErrServerClosed; if one listener fails, the others are closed and its
// error returned.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	bound := s.bound
	s.mu.Unlock()
	if len(bound) == 0 {
		return errors.New("broker: no listener configured")
	}
	errc := make(chan error, len(bound))
	for kind, l := range bound {
		go func() {
			switch kind {
			case "tls":
				errc <- s.Serve(tls.NewListener(l, s.tlsConfig))
			case "ws":
				errc <- s.ServeWebSocket(l)
			case "wss":
				errc <- s.ServeWebSocket(tls.NewListener(l, s.tlsConfig))
			default:
				errc <- s.Serve(l)
			}
		}()
	}
	var first error
	for range bound {
		err := <-errc
		if first == nil {
			first = err
			if !errors.Is(err, ErrServerClosed) {
				for _, l := range bound {
					l.Close()
				}
			}
		}
	}
	return first
}

// wsMaxHeaderBytes bounds an upgrade request's header, which a
// connection holds before it counts as a connection at all (net/http's
// default is 1 MiB).
const wsMaxHeaderBytes = 8 << 10

// ServeWebSocket serves MQTT over WebSocket on l (subprotocol "mqtt",
// binary frames; packets may span frames) until Shutdown.
func (s *Server) ServeWebSocket(l net.Listener) error {
	hs := &http.Server{Handler: s.WebSocketHandler(), ReadHeaderTimeout: s.opts.ConnectTimeout,
		MaxHeaderBytes: wsMaxHeaderBytes}
	// A connection is upgraded by its first request or closed after its
	// answer: an idle keep-alive connection would be held for ever,
	// counted by neither MaxConnections nor MaxPendingConnections.
	hs.SetKeepAlivesEnabled(false)
	if !s.trackListener(l) {
		return ErrServerClosed
	}
	err := hs.Serve(retryListener{l, s})
	s.untrackListener(l)
	select {
	case <-s.done:
		return ErrServerClosed
	default:
	}
	s.health.stop(l, err)
	return fmt.Errorf("broker: websocket: %w", err)
}

// WebSocketHandler returns an http.Handler upgrading requests to MQTT over
// WebSocket, for a caller's own HTTP server. A request carrying an Origin
// header (from a browser) is refused with 403 unless the origin is in
// Options.WSAllowedOrigins (origin.go).
func (s *Server) WebSocketHandler() http.Handler {
	upgrader := websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		CheckOrigin:     s.checkOrigin,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade answered the client
		}
		// The handler returns at once: the connection lives on in
		// the broker and no HTTP goroutine waits for it.
		s.startConn(&wsConn{ws: ws, certUser: certUser(r.TLS)})
	})
}

// wsConn is a net.Conn over a WebSocket: reads run across binary frames,
// each Write is one binary frame.
type wsConn struct {
	ws       *websocket.Conn
	r        io.Reader
	certUser string // CN of a verified client certificate (wss)
	// wmu serialises writes (the broker has one writer at a time, but
	// Close may race with it).
	wmu sync.Mutex
	// rmu serialises reads and guards r.
	rmu sync.Mutex
}

func (c *wsConn) Read(b []byte) (int, error) {
	// One reader at a time: the read loop, or the drain after a server
	// close (close.go); gorilla allows one.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			t, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if t != websocket.BinaryMessage {
				// [MQTT-6.0.0-1]: text frames close the connection.
				return 0, errors.New("broker: websocket text frame")
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseWrite sends a close frame (1000, normal closure) after the last
// packet and shuts down the TCP (or TLS) writing side, so that the client
// reads both; the server then drains the input (close.go).
func (c *wsConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		return err
	}
	if cw, ok := c.ws.UnderlyingConn().(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	c.ws.SetReadDeadline(t)
	return c.ws.SetWriteDeadline(t)
}
