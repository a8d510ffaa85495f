package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

const cookieName = "edgegw_console"

// Login attempts: failures refill one every loginRefill, up to loginBurst.
const (
	loginBurst  = 5
	loginRefill = 10 * time.Second
)

// auth keeps the sessions of users logged in to send commands.
type auth struct {
	o Options

	// mu guards sessions and the login budget.
	mu         sync.Mutex
	sessions   map[string]*session // cookie value → session
	failures   float64             // failed logins still counted
	failedLast time.Time
}

type session struct {
	user    string
	csrf    string
	expires time.Time
}

func newAuth(o Options) *auth {
	return &auth{o: o, sessions: map[string]*session{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// session returns r's live session, if any.
func (a *auth) session(r *http.Request, now time.Time) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[ck.Value]
	if s == nil || now.After(s.expires) {
		delete(a.sessions, ck.Value)
		return nil
	}
	return s
}

// allowLogin spends one unit of the failure budget's headroom check: it
// reports whether a login may be tried now.
func (a *auth) allowLogin(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures -= now.Sub(a.failedLast).Seconds() / loginRefill.Seconds()
	a.failures = max(a.failures, 0)
	a.failedLast = now
	return a.failures < loginBurst
}

func (a *auth) failed() {
	a.mu.Lock()
	a.failures++
	a.mu.Unlock()
}

// newSession stores a session for user, evicting the one closest to
// expiry when maxSessions are open.
func (a *auth) newSession(user string, now time.Time) (id string, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.sessions {
		if now.After(v.expires) {
			delete(a.sessions, k)
		}
	}
	if len(a.sessions) >= maxSessions {
		var oldest string
		for k, v := range a.sessions {
			if oldest == "" || v.expires.Before(a.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(a.sessions, oldest)
	}
	id = randomHex(32)
	s = &session{user: user, csrf: randomHex(32), expires: now.Add(sessionTTL)}
	a.sessions[id] = s
	return id, s
}

func (a *auth) end(r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, ck.Value)
		a.mu.Unlock()
	}
}

func (c *Console) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.o.Secure,
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Error string `json:"error"`
}

// readBody decodes a JSON body of at most maxBodyBytes into v.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return errors.New("content type must be application/json")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return errors.New("body too large")
	}
	return json.Unmarshal(b, v)
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.o.Command == nil {
		writeJSON(w, http.StatusNotFound, apiError{"commands are off ([console] commands = false)"})
		return
	}
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := readBody(w, r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	now := c.o.Now()
	if !c.auth.allowLogin(now) {
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusTooManyRequests, apiError{"too many failed logins: wait"})
		return
	}
	if req.User == "" || len(req.User) > 128 || len(req.Password) > 1024 || !c.o.Verify(r.RemoteAddr, req.User, []byte(req.Password)) {
		c.auth.failed()
		c.log.Warn("console login refused", "user", trim(req.User, 128), "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, apiError{"wrong user or password"})
		return
	}
	id, s := c.auth.newSession(req.User, now)
	http.SetCookie(w, c.cookie(id, int(sessionTTL/time.Second)))
	c.log.Info("console login", "user", req.User, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, sessionView{User: s.user, CSRF: s.csrf})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.auth.end(r)
	http.SetCookie(w, c.cookie("", -1))
	writeJSON(w, http.StatusOK, struct{}{})
}

// command sends a command from the page through Options.Command. It needs
// a session and its CSRF token in X-CSRF-Token.
func (c *Console) command(w http.ResponseWriter, r *http.Request) {
	if c.o.Command == nil {
		writeJSON(w, http.StatusNotFound, apiError{"commands are off ([console] commands = false)"})
		return
	}
	now := c.o.Now()
	s := c.auth.session(r, now)
	if s == nil {
		writeJSON(w, http.StatusUnauthorized, apiError{"log in first"})
		return
	}
	tok := r.Header.Get("X-CSRF-Token")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		writeJSON(w, http.StatusForbidden, apiError{"missing or wrong CSRF token"})
		return
	}
	var req struct {
		Device  string          `json:"device"`
		Command string          `json:"command"`
		Value   json.RawMessage `json:"value"`
	}
	if err := readBody(w, r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	if !c.offered(req.Device, req.Command) {
		writeJSON(w, http.StatusBadRequest, apiError{"no such command"})
		return
	}
	if len(req.Value) == 0 || len(req.Value) > maxValueBytes {
		writeJSON(w, http.StatusBadRequest, apiError{"value missing or too long"})
		return
	}
	// The id tells the command's origin in the command log and on the
	// result topic; the command expires if the gate cannot apply it
	// within half a minute (a person at the vehicle is waiting).
	id := "console-" + now.UTC().Format("20060102T150405Z") + "-" + randomHex(4)
	payload, _ := json.Marshal(struct {
		ID        string          `json:"id"`
		Value     json.RawMessage `json:"value"`
		ExpiresAt time.Time       `json:"expires_at"`
	}{id, req.Value, now.Add(30 * time.Second).UTC()})
	c.st.sent(s.user, req.Device, req.Command, id, req.Value)
	c.log.Info("console command", "user", s.user, "device", req.Device, "command", req.Command, "id", id)
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res := c.o.Command(ctx, s.user, req.Device, req.Command, payload)
	c.st.finished(req.Device, req.Command, res)
	writeJSON(w, http.StatusOK, res)
}

func (c *Console) offered(dev, cmd string) bool {
	for _, r := range c.o.Commands() {
		if r.Device == dev && r.Name == cmd {
			return true
		}
	}
	return false
}
