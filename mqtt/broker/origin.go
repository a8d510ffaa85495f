package broker

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// checkOrigin is the WebSocket listeners' Origin check [RFC 6455 10.2]: a
// request without an Origin header (a non-browser client: mosquitto_sub,
// paho, a device) is served; one with an Origin header (a page in a
// browser) is served only when its origin is in Options.WSAllowedOrigins,
// so that a web page from anywhere cannot drive the broker with the
// browser's network position (loopback, the vehicle's LAN).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return true
	}
	if len(origin) == 1 && s.originAllowed(origin[0]) {
		return true
	}
	if s.originRefused.Add(1) == 1 {
		s.log.Warn("websocket refused: origin not in ws_allowed_origins (logged once)", "origin", origin[0], "remote", r.RemoteAddr)
	}
	return false
}

// originAllowed compares origin with the allow-list: scheme and host
// case-insensitively, a missing port as the scheme's default; "*" allows
// every origin.
func (s *Server) originAllowed(origin string) bool {
	o := normOrigin(origin)
	if o == "" {
		return false
	}
	for _, a := range s.opts.WSAllowedOrigins {
		if a == "*" || normOrigin(a) == o {
			return true
		}
	}
	return false
}

// normOrigin returns scheme://host:port in lower case, "" for an origin
// that is not one ("null" from a sandboxed page or a file:// URL).
func normOrigin(origin string) string {
	u, err := url.Parse(strings.TrimSpace(origin))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// ValidOrigin reports whether origin may stand in Options.WSAllowedOrigins:
// "*" or scheme://host[:port].
func ValidOrigin(origin string) bool {
	return origin == "*" || normOrigin(origin) != ""
}

// anonymousFor reports whether c may connect without a user name:
// Options.AllowAnonymous, or its default (every listener on loopback and
// none of them a WebSocket one). A connection that came over a WebSocket
// (a listener of the server or a caller's WebSocketHandler) needs
// AllowAnonymous set true explicitly.
func (s *Server) anonymousFor(c *conn) bool {
	if _, ws := c.nc.(*wsConn); ws && s.opts.AllowAnonymous == nil {
		return false
	}
	return s.anonymous
}
