package broker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// wsServer serves s's WebSocket listener and returns its address.
func wsServer(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	o.WSListen = "127.0.0.1:0"
	s := newServer(t, o)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.ListenAndServe()
	return s, s.Addr("ws").String()
}

// TestWebSocketOrigin (issue row 2): a request carrying an Origin header
// (a browser's) is refused unless the origin is allowed; one without (a
// non-browser client) is served.
func TestWebSocketOrigin(t *testing.T) {
	_, addr := wsServer(t, Options{AllowAnonymous: ptr(true), WSAllowedOrigins: []string{"http://dash.local:8080", "https://app.example", "http://[::1]:8080"}})
	tests := []struct {
		name   string
		origin string
		ok     bool
	}{
		{"no origin", "", true},
		{"evil", "http://evil.example", false},
		{"null", "null", false},
		{"allowed", "http://dash.local:8080", true},
		{"allowed, case and default port", "HTTPS://App.Example:443", true},
		{"other port", "http://dash.local:8081", false},
		{"other scheme", "https://dash.local:8080", false},
		{"ipv6", "http://[::1]:8080", true},
		{"ipv6 other port", "http://[::1]:8081", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
			ws, resp, err := d.Dial("ws://"+addr+"/mqtt", h)
			if !tt.ok {
				if err == nil {
					ws.Close()
					t.Fatal("upgraded, want refused")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("response %v, want 403", resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wc := &wsConn{ws: ws}
			defer wc.Close()
			c := &tclient{t: t, nc: wc, r: bufio.NewReader(wc), v: packet.V311}
			if ack := c.connack(&packet.Connect{CleanStart: true}); ack.Code != packet.Success {
				t.Fatalf("CONNACK %v", ack.Code)
			}
		})
	}
}

// TestWebSocketAnonymous (issue row 2): once a WebSocket listener exists,
// anonymous access is an explicit opt-in, even on loopback.
func TestWebSocketAnonymous(t *testing.T) {
	for _, tc := range []struct {
		name string
		anon *bool
		want packet.ReasonCode
	}{
		{"default", nil, packet.NotAuthorized},
		{"opt in", ptr(true), packet.Success},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := wsServer(t, Options{Listen: "127.0.0.1:0", AllowAnonymous: tc.anon})
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
			ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
			if err != nil {
				t.Fatal(err)
			}
			wc := &wsConn{ws: ws}
			defer wc.Close()
			c := &tclient{t: t, nc: wc, r: bufio.NewReader(wc), v: packet.V311}
			if ack := c.connack(&packet.Connect{CleanStart: true}); ack.Code != tc.want {
				t.Errorf("websocket: CONNACK %v, want %v", ack.Code, tc.want)
			}
			// The loopback TCP listener follows the same default.
			tc2 := pipe(t, s, packet.V311)
			if ack := tc2.connack(&packet.Connect{CleanStart: true}); ack.Code != tc.want {
				t.Errorf("tcp: CONNACK %v, want %v", ack.Code, tc.want)
			}
		})
	}
	// A caller's own handler: anonymous over WebSocket needs the opt-in
	// even when the default would allow it for the server's listeners.
	s := newServer(t, Options{})
	hs := httptest.NewServer(s.WebSocketHandler())
	defer hs.Close()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws"+hs.URL[len("http"):]+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wsConn{ws: ws}
	defer wc.Close()
	c := &tclient{t: t, nc: wc, r: bufio.NewReader(wc), v: packet.V311}
	if ack := c.connack(&packet.Connect{CleanStart: true}); ack.Code != packet.NotAuthorized {
		t.Errorf("handler: CONNACK %v, want not authorized", ack.Code)
	}
}

// browserPage opens ws:// to the broker from a page, sends a 3.1.1 CONNECT
// and sets window.result to what happened.
const browserPage = `<!doctype html><title>evil</title><script>
const ws = new WebSocket("ws://%s/mqtt", "mqtt");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send(new Uint8Array([0x10,0x0c,0,4,0x4d,0x51,0x54,0x54,4,2,0,60,0,0]));
ws.onmessage = (e) => { const b = new Uint8Array(e.data); window.result = "connack:" + b[3]; };
ws.onerror = () => { window.result = window.result || "error"; };
ws.onclose = (e) => { window.result = window.result || ("close:" + e.code); };
</script>`

// TestBrowserOrigin (issue row 2) drives a real browser (Debian's
// chromium): a page from another origin (a test HTTP server on another
// port) opens the broker's WebSocket listener; with anonymous access
// allowed on loopback, only the Origin check stands between the page and
// the broker. Refused by default; served when the page's origin is
// allowed, which shows the page would get through otherwise.
func TestBrowserOrigin(t *testing.T) {
	chromium := needProgram(t, "chromium")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, browserPage, r.URL.Query().Get("broker"))
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	for _, tc := range []struct {
		name    string
		allowed []string
		want    string
	}{
		{"refused", nil, "error"},
		{"allowed", []string{page.URL}, "connack:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := wsServer(t, Options{AllowAnonymous: ptr(true), WSAllowedOrigins: tc.allowed})
			if err := chromedp.Do(bctx, chromedp.Navigate(page.URL+"/?broker="+addr)); err != nil {
				t.Fatalf("chromium: %v", err)
			}
			result, err := chromedp.Run(bctx, chromedp.Poll[string](`window.result`, chromedp.WithPollingTimeout(30*time.Second)))
			if err != nil {
				t.Fatalf("chromium: %v", err)
			}
			if result != tc.want {
				t.Errorf("page saw %q, want %q", result, tc.want)
			}
			if st := s.Stats(); tc.want == "error" && st.ConnectionsTotal != 0 {
				t.Errorf("%d connections reached the broker, want 0", st.ConnectionsTotal)
			}
		})
	}
}

// FuzzOrigin feeds arbitrary Origin headers to the allow-list check: no
// panic; a normalised origin normalises to itself and is allowed by an
// allow-list holding it.
func FuzzOrigin(f *testing.F) {
	for _, seed := range []string{"", "null", "http://evil.example", "http://dash.local:8080", "HTTPS://App.Example:443",
		"https://app.example/page", "ws://[::1]:80", "file:///etc/passwd", "http://a:b@host:1", "http://%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		n := normOrigin(origin)
		if n == "" {
			return
		}
		if n2 := normOrigin(n); n2 != n {
			t.Fatalf("normOrigin(%q) = %q, then %q", origin, n, n2)
		}
		s := &Server{opts: Options{WSAllowedOrigins: []string{n}}}
		if !s.originAllowed(origin) {
			t.Fatalf("%q not allowed by [%q]", origin, n)
		}
	})
}

// TestWebSocketNoKeepAlive: a request to the WebSocket listener that is
// not an upgrade is answered and its connection closed, not kept idle
// for ever outside the connection budgets.
func TestWebSocketNoKeepAlive(t *testing.T) {
	_, addr := wsServer(t, Options{AllowAnonymous: ptr(true)})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(nc, "GET /mqtt HTTP/1.1\r\nHost: broker\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer: Read = %d, %v; want the connection closed (EOF)", n, err)
	}
}
