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
	"slices"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/mqtt/broker"

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
	srv, err := broker.New(broker.Options{PasswordFile: path})
	if err != nil {
		t.Fatal(err)
	}
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
		check := passwordCheck(srv.CheckPassword, tt.users)
		if got := check("127.0.0.1:40000", tt.user, []byte(tt.pw)); got != tt.want {
			t.Errorf("%s: check(%q, %q) = %v, want %v", tt.name, tt.user, tt.pw, got, tt.want)
		}
	}
	none, err := broker.New(broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if passwordCheck(none.CheckPassword, nil)("127.0.0.1:40000", "tech", []byte("s3cret")) {
		t.Error("no password file lets a user in")
	}
}

// TestPasswordCheckUnknownUserCost: a known, unknown or unlisted user
// costs one check by the broker (which verifies an unknown user's
// password against a hash all the same), so that the console's answer
// time does not tell which accounts exist or may log in; the check gets
// the client's address, for the login guard.
func TestPasswordCheckUnknownUserCost(t *testing.T) {
	var calls []string
	check := func(source, user string, password []byte) bool {
		calls = append(calls, source+" "+user)
		return string(password) == "right"
	}
	tests := []struct {
		name     string
		users    []string
		user, pw string
	}{
		{"known", nil, "tech", "wrong"},
		{"unknown", nil, "root", "wrong"},
		{"not listed", []string{"tech"}, "dash", "right"},
	}
	for _, tt := range tests {
		calls = nil
		if passwordCheck(check, tt.users)("10.0.0.9:5000", tt.user, []byte(tt.pw)) {
			t.Errorf("%s: check(%q, %q) = true, want false", tt.name, tt.user, tt.pw)
		}
		if want := []string{"10.0.0.9:5000 " + tt.user}; !slices.Equal(calls, want) {
			t.Errorf("%s: broker checks %q, want %q", tt.name, calls, want)
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
