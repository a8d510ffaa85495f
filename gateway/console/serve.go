package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// asset is an embedded file. Its gzip form is made at the first request
// that accepts it, so that a gateway whose page is never opened never
// pays for a compressor.
type asset struct {
	typ  string
	raw  []byte
	etag string

	gzOnce sync.Once
	gz     []byte
}

func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(a.raw)
		zw.Close()
		a.gz = b.Bytes()
	})
	return a.gz
}

// contentType is by file extension; mime.TypeByExtension would load the
// system's mime.types tables (about a megabyte) for three files.
var contentType = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

func loadAssets() (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		out[strings.TrimPrefix(p, "static/")] = &asset{
			typ: contentType[path.Ext(p)], raw: raw,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		return nil
	})
	return out, err
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", c.file("index.html"))
	m.HandleFunc("GET /console/app.js", c.file("app.js"))
	m.HandleFunc("GET /console/style.css", c.file("style.css"))
	m.HandleFunc("GET /console/api/state", c.stateJSON)
	m.HandleFunc("GET /console/events", c.events)
	// Every request that changes something passes the cross-origin check
	// (Sec-Fetch-Site, else Origin against Host) and, once logged in,
	// the session's CSRF token.
	cop := http.NewCrossOriginProtection()
	m.Handle("POST /console/api/login", cop.Handler(http.HandlerFunc(c.login)))
	m.Handle("POST /console/api/logout", cop.Handler(http.HandlerFunc(c.logout)))
	m.Handle("POST /console/api/command", cop.Handler(http.HandlerFunc(c.command)))
	c.mux = m
}

// securityHeaders are on every response: no framing, no sniffing, scripts
// and styles only from the page's origin, no referrer.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func (c *Console) file(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := c.assets[name]
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", a.typ)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.raw
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			body = a.gzipped()
		}
		w.Write(body)
	}
}

// view returns the snapshot a client r gets.
func (c *Console) view(r *http.Request) view {
	now := c.o.Now()
	v := c.st.snapshot(now)
	v.Status = c.statusJSON()
	v.CanSend = c.o.Command != nil
	if s := c.auth.session(r, now); s != nil {
		v.Session = &sessionView{User: s.user, CSRF: s.csrf}
	}
	return v
}

func (c *Console) stateJSON(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(c.view(r))
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func (c *Console) statusJSON() json.RawMessage {
	st := c.o.Status()
	b, _ := json.Marshal(st)
	return b
}

// client is an open event stream.
type client struct {
	ch       chan []byte
	gone     chan struct{}
	goneOnce sync.Once
}

func (cl *client) drop() { cl.goneOnce.Do(func() { close(cl.gone) }) }

// events streams a snapshot, then a delta per Interval while something
// changed. A client that falls clientBacklog updates behind is dropped;
// its EventSource reconnects and gets a fresh snapshot.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	cl := &client{ch: make(chan []byte, clientBacklog), gone: make(chan struct{})}
	c.mu.Lock()
	if len(c.clients) >= maxClients {
		c.mu.Unlock()
		http.Error(w, "too many open pages", http.StatusServiceUnavailable)
		return
	}
	c.clients[cl] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.clients, cl)
		c.mu.Unlock()
	}()
	snap, _ := json.Marshal(c.view(r))
	// Each write gets its own deadline, whatever WriteTimeout the server
	// has: the stream lives long, a stalled reader does not.
	rc := http.NewResponseController(w)
	deadline := func() { rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }
	deadline()
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	writeEvent(w, "snapshot", snap)
	fl.Flush()
	keep := time.NewTicker(keepalivePause)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-cl.gone:
			return
		case b := <-cl.ch:
			deadline()
			writeEvent(w, "delta", b)
			fl.Flush()
		case <-keep.C:
			deadline()
			w.Write([]byte(": keepalive\n\n"))
			fl.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, data []byte) {
	w.Write([]byte("event: " + name + "\ndata: "))
	w.Write(data) // JSON has no raw newlines
	w.Write([]byte("\n\n"))
}

// tick sends what changed to every open page, and the status when it
// changed. With no page open it only forgets the changes.
func (c *Console) tick() {
	c.mu.Lock()
	n := len(c.clients)
	c.mu.Unlock()
	now := c.o.Now()
	c.st.setKnown(c.o.Devices())
	if n == 0 {
		c.st.delta(now)
		c.mu.Lock()
		c.lastStatus = nil
		c.mu.Unlock()
		return
	}
	st := c.o.Status()
	d := c.st.delta(now)
	sb, _ := json.Marshal(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.Equal(sb, c.lastStatus) {
		d.Status = sb
		c.lastStatus = sb
	}
	if d.Status == nil && d.Devices == nil && d.Alarms == nil && d.Series == nil && d.Log == nil {
		return
	}
	b, _ := json.Marshal(d)
	for cl := range c.clients {
		select {
		case cl.ch <- b:
		default:
			cl.drop()
		}
	}
}

func (c *Console) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for cl := range c.clients {
		cl.drop()
	}
}
