package uplink

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/mqtt/client"
)

// credFiles gives the client its credentials before each connection
// attempt. It reads the password, CA, certificate and key files again when
// one of them changed (size or modification time), so that a certificate
// or password rotated on disk is used from the next connect on, without a
// restart. When the changed files do not load (caught half-written, a key
// that does not match its certificate), the last good credentials stay in
// use, the error is logged, and the files are tried again next time.
type credFiles struct {
	password     []byte // when there is no password file
	passwordFile string
	tls          bool
	ca, cert     string
	key          string
	serverName   string
	alpn         []string
	log          *slog.Logger

	mu      sync.Mutex
	stamps  [4]stamp // of the files last loaded
	last    *client.Credentials
	lastErr string // last load error logged
}

type stamp struct {
	size int64
	mod  time.Time
}

func (c *credFiles) files() [4]string {
	return [4]string{c.passwordFile, c.ca, c.cert, c.key}
}

// get returns the credentials to connect with (client.Options.GetCredentials).
func (c *credFiles) get() (client.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now [4]stamp
	for i, f := range c.files() {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			now[i] = stamp{fi.Size(), fi.ModTime()}
		}
	}
	if c.last != nil && now == c.stamps {
		return *c.last, nil
	}
	cred, err := c.load()
	if err != nil {
		if c.last == nil {
			return client.Credentials{}, err
		}
		if msg := err.Error(); msg != c.lastErr {
			c.lastErr = msg
			c.log.Warn("credential files changed but do not load, keeping the previous ones", "err", err)
		}
		return *c.last, nil
	}
	if c.last != nil {
		c.log.Info("credential files changed, reloaded for the next connection")
	}
	c.last, c.stamps, c.lastErr = &cred, now, ""
	return cred, nil
}

func (c *credFiles) load() (client.Credentials, error) {
	cred := client.Credentials{Password: c.password}
	if c.passwordFile != "" {
		b, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return cred, fmt.Errorf("password_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		cred.Password = []byte(strings.TrimRight(line, "\r"))
	}
	if c.tls {
		cfg, err := client.TLSConfig(c.ca, c.cert, c.key, c.serverName, c.alpn)
		if err != nil {
			return cred, err
		}
		cred.TLS = cfg
	}
	return cred, nil
}
