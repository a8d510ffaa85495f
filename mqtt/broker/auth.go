package broker

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/mqtt/packet"
	"github.com/edgegw/edgegw/mqtt/topic"
)

// ACLRule is one access rule. Rules are checked in order and the first
// that matches the client, the action and the topic decides.
type ACLRule struct {
	// User the rule applies to: a user name, "*" for any authenticated
	// user, "" for anonymous clients.
	User string
	// Permission is "allow" or "deny".
	Permission string
	// Action is "publish", "subscribe" or "all".
	Action string
	// Topic is a topic filter; %u and %c stand for the user name and the
	// client identifier (a rule with either never matches a client whose
	// substituted value contains '/', '+' or '#', as in Mosquitto).
	Topic string
}

func (r ACLRule) validate() error {
	switch r.Permission {
	case "allow", "deny":
	default:
		return fmt.Errorf("permission %q: want allow or deny", r.Permission)
	}
	switch r.Action {
	case "publish", "subscribe", "all":
	default:
		return fmt.Errorf("action %q: want publish, subscribe or all", r.Action)
	}
	f := strings.NewReplacer("%u", "u", "%c", "c").Replace(r.Topic)
	if err := topic.ValidFilter(f); err != nil {
		return fmt.Errorf("topic %q: %w", r.Topic, err)
	}
	return nil
}

type action int

const (
	actPublish action = iota
	actSubscribe
)

// ErrBadAuthMethod is returned by an EnhancedAuth that does not know the
// requested method; the client gets reason 0x8C.
var ErrBadAuthMethod = errors.New("broker: bad authentication method")

// EnhancedAuth runs the MQTT 5.0 enhanced authentication exchange of a
// CONNECT carrying an Authentication Method, and of a re-authentication
// [MQTT-4.12]. Auth is called with step 0 and the CONNECT's (or AUTH's)
// authentication data, then with step 1, 2, … and the data of each AUTH the
// client sends. It returns the data for the client and done; while not
// done the server sends AUTH 0x18 (continue) with reply. When done, reply
// goes in CONNACK (or AUTH 0x00) and user becomes the client's user name
// for the ACL. An error refuses with 0x87, or 0x8C for ErrBadAuthMethod.
// Auth may be called from many connections at once.
type EnhancedAuth interface {
	Auth(method, clientID string, step int, data []byte) (reply []byte, user string, done bool, err error)
}

// authenticator checks passwords and the ACL.
type authenticator struct {
	hasFile bool
	users   map[string]string // user name → hash
	acl     []ACLRule

	// guard slows password guessing (login.go).
	guard *loginGuard
	// slotWait bounds the wait for a check slot: Options.ConnectTimeout.
	slotWait time.Duration
	// dummy is the hash an unknown user's password is verified against,
	// so that the answer takes as long as for a known user.
	dummy string
	// verify is VerifyPassword; tests count its calls.
	verify func(hash string, password []byte) bool

	// mu guards good.
	mu   sync.Mutex
	good map[string][32]byte // user → SHA-256 of the last verified password
}

func newAuthenticator(o Options) (*authenticator, error) {
	a := &authenticator{users: map[string]string{}, good: map[string][32]byte{},
		guard: newLoginGuard(0), verify: VerifyPassword, slotWait: o.ConnectTimeout}
	if a.slotWait <= 0 {
		a.slotWait = connectTimeout
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("broker: password file: %w", err)
		}
		if a.users, err = parsePasswords(b); err != nil {
			return nil, fmt.Errorf("broker: password file %s: %w", o.PasswordFile, err)
		}
		a.hasFile = true
		first := ""
		for u := range a.users {
			if first == "" || u < first {
				first = u
			}
		}
		a.dummy = a.users[first]
	}
	var errs []error
	for i, r := range o.ACL {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("acl[%d]: %w", i, err))
		}
	}
	a.acl = append(a.acl, o.ACL...)
	if o.ACLFile != "" {
		f, err := os.Open(o.ACLFile)
		if err != nil {
			return nil, fmt.Errorf("broker: acl file: %w", err)
		}
		rules, err := ParseACL(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("broker: acl file %s: %w", o.ACLFile, err)
		}
		a.acl = append(a.acl, rules...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return a, nil
}

func parsePasswords(b []byte) (map[string]string, error) {
	users := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || !knownHash(hash) {
			return nil, fmt.Errorf("line %d: want user:hash (bcrypt or argon2id)", i+1)
		}
		users[user] = hash
	}
	return users, nil
}

func knownHash(h string) bool {
	return strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$") ||
		strings.HasPrefix(h, "$argon2id$")
}

// login authenticates a CONNECT from source: a verified client
// certificate's common name wins, then user name and password against the
// password file. waiting is set while the attempt waits for its login
// turn.
func (a *authenticator) login(cp *packet.Connect, certUser string, anonymous bool, source string, waiting *atomic.Bool) (string, packet.ReasonCode) {
	if certUser != "" {
		return certUser, packet.Success
	}
	if !cp.UsernameFlag {
		if anonymous {
			return "", packet.Success
		}
		return "", packet.NotAuthorized // 3.1.1: 5 not authorized
	}
	if !a.hasFile {
		if anonymous {
			return cp.Username, packet.Success
		}
		return "", packet.NotAuthorized
	}
	if code := a.checkGuarded(source, cp.Username, cp.Password, waiting); code != packet.Success {
		return "", code
	}
	return cp.Username, packet.Success
}

// checkGuarded checks a password under the login guard (login.go): the
// wait the source's and the user's failures call for, then a check slot.
// waiting (may be nil) is set from the wait on: the pending-connection
// budget closes such a connection before others (limits.go).
func (a *authenticator) checkGuarded(source, user string, password []byte, waiting *atomic.Bool) packet.ReasonCode {
	g := a.guard
	key := user
	hash, known := a.users[user]
	if !known {
		key = unknownUser
	}
	// The password this user last logged in with passes at once, before
	// any wait: guessers who keep a user's score high do not lock out
	// its owner. A wrong one takes the slow path like any other.
	sum := sha256.Sum256(password)
	if a.cached(user, sum) {
		return packet.Success
	}
	d, hot, ok := g.before(source, key)
	if !ok {
		return packet.ServerBusy // 3.1.1: 3, server unavailable
	}
	if d > 0 {
		if waiting != nil {
			waiting.Store(true)
		}
		g.sleep(d)
	}
	if !g.slots.acquire(hot, a.slotWait) {
		return packet.ServerBusy // 3.1.1: 3, server unavailable
	}
	ok = a.check(user, hash, known, sum, password)
	g.slots.release()
	if !ok {
		g.fail(source, key, user)
		return packet.BadUsernameOrPassword
	}
	return packet.Success
}

// check verifies user's password. An unknown user's password is verified
// against another user's hash all the same (and refused), so that the
// answer takes as long.
func (a *authenticator) check(user, hash string, known bool, sum [32]byte, password []byte) bool {
	if !known {
		if a.dummy != "" {
			a.verify(a.dummy, password)
		}
		return false
	}
	if !a.verify(hash, password) {
		return false
	}
	a.mu.Lock()
	a.good[user] = sum
	a.mu.Unlock()
	return true
}

// cached reports whether sum is the SHA-256 of the password user last
// logged in with.
func (a *authenticator) cached(user string, sum [32]byte) bool {
	a.mu.Lock()
	g, seen := a.good[user]
	a.mu.Unlock()
	return seen && subtle.ConstantTimeCompare(g[:], sum[:]) == 1
}

// allowed applies the ACL to a publish to name or a subscription to
// filter.
func (a *authenticator) allowed(user, clientID, t string, act action) bool {
	if len(a.acl) == 0 {
		return true
	}
	if act == actSubscribe {
		if g, f, err := topic.ParseShared(t); err == nil && g != "" {
			t = f
		}
	}
	for _, r := range a.acl {
		switch {
		case r.User == "*" && user == "":
			continue
		case r.User != "*" && r.User != user:
			continue
		}
		if (r.Action == "publish" && act != actPublish) || (r.Action == "subscribe" && act != actSubscribe) {
			continue
		}
		f := r.Topic
		if strings.Contains(f, "%") {
			if strings.Contains(f, "%u") {
				if user == "" || strings.ContainsAny(user, "/+#") {
					continue
				}
				f = strings.ReplaceAll(f, "%u", user)
			}
			if strings.Contains(f, "%c") {
				// "": an in-process publisher (PublishAs) has no client id.
				if clientID == "" || strings.ContainsAny(clientID, "/+#") {
					continue
				}
				f = strings.ReplaceAll(f, "%c", clientID)
			}
		}
		var ok bool
		if act == actPublish {
			ok = topic.Match(f, t)
		} else {
			ok = covers(f, t)
		}
		if ok {
			return r.Permission == "allow"
		}
	}
	return false
}

// covers reports whether every topic name matched by filter sub is also
// matched by filter rule.
func covers(rule, sub string) bool {
	if strings.HasPrefix(sub, "$") && (strings.HasPrefix(rule, "+") || strings.HasPrefix(rule, "#")) {
		// As in matching [MQTT-4.7.2-1]: a rule for $-topics names them.
		return false
	}
	for {
		rl, rrest, rmore := strings.Cut(rule, "/")
		sl, srest, smore := strings.Cut(sub, "/")
		switch {
		case rl == "#":
			return true
		case rl == "+":
			if sl == "#" {
				return false
			}
		case rl != sl || sl == "+" || sl == "#":
			return false
		}
		if !rmore || !smore {
			// "a/#" covers "a" too, as it matches the parent level.
			return rmore == smore || (rmore && rrest == "#")
		}
		rule, sub = rrest, srest
	}
}

// ParseACL reads a Mosquitto-style ACL file: "user NAME" starts a block,
// "topic [read|write|readwrite|deny] FILTER" grants the block's user (or
// anonymous clients before any user line), "pattern [read|write|readwrite|
// deny] FILTER" applies to every client with %u and %c substituted. read
// is subscribe, write is publish; access defaults to readwrite. Deny rules
// are placed before allow rules, as Mosquitto checks them first.
func ParseACL(r io.Reader) ([]ACLRule, error) {
	var deny, allow []ACLRule
	user := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch kw {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf("line %d: user without a name", n)
			}
			user = rest
			continue
		case "topic", "pattern":
		default:
			return nil, fmt.Errorf("line %d: unknown keyword %q", n, kw)
		}
		access := "readwrite"
		if a, f, ok := strings.Cut(rest, " "); ok {
			switch a {
			case "read", "write", "readwrite", "deny":
				access, rest = a, strings.TrimSpace(f)
			}
		}
		if rest == "" {
			return nil, fmt.Errorf("line %d: %s without a topic", n, kw)
		}
		users := []string{user}
		if kw == "pattern" {
			users = []string{"*", ""}
		}
		for _, u := range users {
			switch access {
			case "deny":
				deny = append(deny, ACLRule{User: u, Permission: "deny", Action: "all", Topic: rest})
			case "read":
				allow = append(allow, ACLRule{User: u, Permission: "allow", Action: "subscribe", Topic: rest})
			case "write":
				allow = append(allow, ACLRule{User: u, Permission: "allow", Action: "publish", Topic: rest})
			default:
				allow = append(allow, ACLRule{User: u, Permission: "allow", Action: "all", Topic: rest})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	rules := append(deny, allow...)
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return rules, nil
}

// hashCost is the bcrypt cost of HashPassword; tests lower it.
var hashCost = 10

// HashPassword returns a bcrypt hash of password for a password file
// (cost 10: about 50 ms on a Raspberry Pi 4 and 4 KiB of memory, where
// argon2id's memory cost would dwarf the broker).
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	if err != nil {
		return "", fmt.Errorf("broker: hash password: %w", err)
	}
	return string(h), nil
}

// VerifyPassword reports whether password matches hash, a bcrypt hash
// ($2a$, $2b$, $2y$) or an argon2id hash in the PHC string format
// ($argon2id$v=19$m=KiB,t=N,p=N$salt$hash, unpadded base64).
func VerifyPassword(hash string, password []byte) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		var v int
		var m, t uint32
		var p uint8
		parts := strings.Split(hash, "$")
		if len(parts) != 6 {
			return false
		}
		if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
			return false
		}
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || p == 0 || t == 0 {
			return false
		}
		salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
		want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
		if err1 != nil || err2 != nil || len(want) == 0 || m > 1<<20 {
			return false
		}
		got := argon2.IDKey(password, salt, t, m, p, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), password) == nil
}

// AppendPasswordEntry sets user's password in the password file at path,
// creating the file (mode 0600) or replacing an existing entry for user.
// The file is replaced atomically.
func AppendPasswordEntry(path, user, password string) error {
	if user == "" || strings.ContainsAny(user, ":\n\r") {
		return fmt.Errorf("broker: user name %q: must be non-empty without ':' or line breaks", user)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("broker: password file: %w", err)
	}
	var out bytes.Buffer
	for _, line := range strings.Split(string(old), "\n") {
		if line == "" {
			continue
		}
		if u, _, _ := strings.Cut(line, ":"); u == user {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	fmt.Fprintf(&out, "%s:%s\n", user, hash)
	return writeFileAtomic(path, out.Bytes(), 0o600)
}

// enhancedAuth runs the AUTH exchange of a CONNECT [MQTT-4.12.0-1..7].
func (c *conn) enhancedAuth(cp *packet.Connect, ack *packet.Connack) bool {
	ea := c.s.opts.EnhancedAuth
	method := cp.Props.AuthMethod
	if ea == nil {
		c.refuse(packet.BadAuthenticationMethod)
		return false
	}
	c.authMeth = method
	data := cp.Props.AuthData
	for step := 0; ; step++ {
		reply, user, done, err := ea.Auth(method, c.clientID, step, data)
		if err != nil {
			code := packet.NotAuthorized
			if errors.Is(err, ErrBadAuthMethod) {
				code = packet.BadAuthenticationMethod
			}
			c.refuse(code)
			return false
		}
		if done {
			c.username = user
			ack.Props.AuthMethod = method
			ack.Props.AuthData = reply
			return true
		}
		c.send(&packet.Auth{Code: packet.ContinueAuthentication,
			Props: packet.Properties{AuthMethod: method, AuthData: reply}})
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.ConnectTimeout))
		p, err := packet.Read(c.r, c.v, c.s.opts.MaxPacketSize)
		if err != nil {
			c.readFailed(err)
			return false
		}
		ap, ok := p.(*packet.Auth)
		if !ok || ap.Code != packet.ContinueAuthentication || ap.Props.AuthMethod != method {
			// [MQTT-4.12.0-4]
			c.refuse(packet.ProtocolError)
			return false
		}
		data = ap.Props.AuthData
	}
}

// onReauth runs a re-authentication started by the client [MQTT-4.12.1].
func (c *conn) onReauth(p *packet.Auth) bool {
	ea := c.s.opts.EnhancedAuth
	if ea == nil || c.authMeth == "" || p.Code != packet.ReAuthenticate || p.Props.AuthMethod != c.authMeth {
		// [MQTT-4.12.0-7] [MQTT-4.12.1-1]
		return c.protocolError(packet.ProtocolError, "unexpected AUTH")
	}
	data := p.Props.AuthData
	for step := 0; ; step++ {
		reply, user, done, err := ea.Auth(c.authMeth, c.clientID, step, data)
		if err != nil {
			return c.protocolError(packet.NotAuthorized, "re-authentication failed")
		}
		if done {
			if user != c.username {
				// The session belongs to the user who connected.
				return c.protocolError(packet.NotAuthorized, "re-authentication as another user")
			}
			c.send(&packet.Auth{Code: packet.Success, Props: packet.Properties{AuthMethod: c.authMeth, AuthData: reply}})
			return true
		}
		c.send(&packet.Auth{Code: packet.ContinueAuthentication,
			Props: packet.Properties{AuthMethod: c.authMeth, AuthData: reply}})
		np, err := packet.Read(c.r, c.v, c.s.opts.MaxPacketSize)
		if err != nil {
			c.readFailed(err)
			return false
		}
		ap, ok := np.(*packet.Auth)
		if !ok || ap.Code != packet.ContinueAuthentication || ap.Props.AuthMethod != c.authMeth {
			return c.protocolError(packet.ProtocolError, "unexpected packet during re-authentication")
		}
		data = ap.Props.AuthData
	}
}
