package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/config"

	"golang.org/x/crypto/bcrypt"
)

// writePasswords writes a broker password file with cheap bcrypt hashes
// (cost 4: the race detector makes cost 10 take seconds).
func writePasswords(t *testing.T, users [][2]string) string {
	t.Helper()
	var b []byte
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, u[0]+":"+string(h)+"\n"...)
	}
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPasswordCheck(t *testing.T) {
	path := writePasswords(t, [][2]string{{"tech", "s3cret"}, {"dash", "display"}})
	tests := []struct {
		name     string
		users    []string
		user, pw string
		want     bool
	}{
		{"right", nil, "tech", "s3cret", true},
		{"wrong password", nil, "tech", "display", false},
		{"unknown user", nil, "root", "s3cret", false},
		{"listed", []string{"tech"}, "tech", "s3cret", true},
		{"not listed", []string{"tech"}, "dash", "display", false},
	}
	for _, tt := range tests {
		check := passwordCheck(path, tt.users)
		if got := check(tt.user, []byte(tt.pw)); got != tt.want {
			t.Errorf("%s: check(%q, %q) = %v, want %v", tt.name, tt.user, tt.pw, got, tt.want)
		}
	}
	if passwordCheck(filepath.Join(t.TempDir(), "none"), nil)("tech", []byte("s3cret")) {
		t.Error("a missing password file lets a user in")
	}
}

// TestPasswordCheckUnknownUserCost: an unknown or unlisted user costs one
// password verification, like a known one, so that the console's answer
// time does not tell which accounts exist.
func TestPasswordCheckUnknownUserCost(t *testing.T) {
	path := writePasswords(t, [][2]string{{"tech", "s3cret"}, {"dash", "display"}})
	calls := 0
	old := verifyPassword
	verifyPassword = func(hash string, password []byte) bool {
		calls++
		return old(hash, password)
	}
	t.Cleanup(func() { verifyPassword = old })
	tests := []struct {
		name     string
		users    []string
		user, pw string
	}{
		{"known", nil, "tech", "wrong"},
		{"unknown", nil, "root", "s3cret"},
		{"not listed", []string{"tech"}, "dash", "display"},
	}
	for _, tt := range tests {
		calls = 0
		if passwordCheck(path, tt.users)(tt.user, []byte(tt.pw)) {
			t.Errorf("%s: check(%q, %q) = true, want false", tt.name, tt.user, tt.pw)
		}
		if calls != 1 {
			t.Errorf("%s: check(%q) verified %d passwords, want 1", tt.name, tt.user, calls)
		}
	}
}

// TestConsoleListenerTLS: with [console] tls_cert and tls_key the health
// listener speaks HTTPS only.
func TestConsoleListenerTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)

	c := &config.Config{Console: config.Console{Enabled: true, TLSCert: certFile, TLSKey: keyFile}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err = consoleListener(c, ln)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered")
		}
	}
	c.Console.TLSKey = filepath.Join(dir, "missing.pem")
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	if _, err := consoleListener(c, l2); err == nil {
		t.Error("a missing key file was accepted")
	}
}
