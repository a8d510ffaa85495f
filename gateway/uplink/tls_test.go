package uplink

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate signed by the CA, as PEM files in dir.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir, name string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, name+"-"+file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kb)
	}
	var p pki
	p.ca = write("ca.crt", "CERTIFICATE", caDER)
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "gw", x509.ExtKeyUsageClientAuth)
	return p
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tlsMosquitto starts Mosquitto with TLS from the good CA, client
// certificates required and user gw with password s3cret; rogue is a
// second, unrelated CA.
func tlsMosquitto(t *testing.T, dir string) (b *mqtttest.Broker, good, rogue pki) {
	t.Helper()
	good = newPKI(t, dir, "good")
	rogue = newPKI(t, dir, "rogue")
	passwd := filepath.Join(dir, "passwd")
	bin := mqtttest.LookPath(t, "mosquitto_passwd")
	if out, err := exec.Command(bin, "-c", "-b", passwd, "gw", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	os.Chmod(passwd, 0o644)
	b = mqtttest.StartMosquitto(t, "cafile "+good.ca, "certfile "+good.serverCert, "keyfile "+good.serverKey,
		"require_certificate true", "allow_anonymous false", "password_file "+passwd)
	return b, good, rogue
}

// countingDialer dials TCP and counts the attempts.
func countingDialer() (func(ctx context.Context, network, addr string) (net.Conn, error), *atomic.Int64) {
	var n atomic.Int64
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}, &n
}

func TestTLS(t *testing.T) {
	b, good, rogue := tlsMosquitto(t, t.TempDir())

	tests := []struct {
		name       string
		caFile     string
		cert, key  string
		password   string
		serverName string
		wantErr    string // "" means the drain completes
	}{
		{"mtls", good.ca, good.clientCert, good.clientKey, "s3cret", "", ""},
		{"mtls sni", good.ca, good.clientCert, good.clientKey, "s3cret", "localhost", ""},
		{"wrong password", good.ca, good.clientCert, good.clientKey, "guess", "", "not authorized"},
		{"client cert of another CA", good.ca, rogue.clientCert, rogue.clientKey, "s3cret", "", "certificate"},
		{"server of another CA", rogue.ca, good.clientCert, good.clientKey, "s3cret", "", "certificate signed by unknown authority"},
		{"no client cert", good.ca, "", "", "s3cret", "", "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fill(t, q, 2, 100, 50, 1)
			var logs syncBuffer
			dial, dials := countingDialer()
			u, stop := startUplink(t, Options{URL: "mqtts://" + b.Addr, ClientID: "gw-" + strings.ReplaceAll(tt.name, " ", "-"),
				Username: "gw", Password: []byte(tt.password), CAFile: tt.caFile, CertFile: tt.cert, KeyFile: tt.key,
				ServerName: tt.serverName, LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q,
				ReconnectMin: 100 * time.Millisecond, ReconnectMax: 400 * time.Millisecond,
				Log:    slog.New(slog.NewTextHandler(&logs, nil)),
				Dialer: dial})
			defer stop()
			if tt.wantErr == "" {
				waitDrained(t, q, 20*time.Second)
				return
			}
			// Four attempts: after backoffs of 50-100, 100-200 and
			// 200-400 ms, so at least 350 ms; a tight loop is faster.
			start := time.Now()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for dials.Load() < 4 {
				if time.Since(start) > 20*time.Second {
					t.Fatalf("%d attempts in 20s", dials.Load())
				}
				<-tick.C
			}
			if el := time.Since(start); el < 350*time.Millisecond {
				t.Errorf("4 attempts in %v: no backoff", el)
			}
			st := u.Status()
			if st.Connected || !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("status %+v, want an error with %q", st, tt.wantErr)
			}
			if l := logs.String(); !strings.Contains(l, "msg=retrying") || !strings.Contains(l, tt.wantErr) {
				t.Errorf("log does not say why it retries:\n%s", l)
			}
			if q.Len() != 101 {
				t.Errorf("queue holds %d, want all 101", q.Len())
			}
		})
	}
}

// TestCredentialsRotated starts the uplink with a client certificate of
// another CA and a wrong password in files, then writes the right ones
// over them while it retries: it connects and drains without a restart.
func TestCredentialsRotated(t *testing.T) {
	dir := t.TempDir()
	b, good, rogue := tlsMosquitto(t, dir)
	cert, key, pw := filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key"), filepath.Join(dir, "gw.password")
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(rogue.clientCert, cert)
	copyFile(rogue.clientKey, key)
	os.WriteFile(pw, []byte("guess\n"), 0o600)

	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 2, 100, 50, 1)
	var logs syncBuffer
	dial, dials := countingDialer()
	u, stop := startUplink(t, Options{URL: "mqtts://" + b.Addr, ClientID: "gw-rotated", Username: "gw", PasswordFile: pw,
		CAFile: good.ca, CertFile: cert, KeyFile: key, LocalPrefix: localPrefix, TopicPrefix: remotePrefix, Queue: q,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		Log:    slog.New(slog.NewTextHandler(&logs, nil)),
		Dialer: dial})
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for dials.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts in 20s", dials.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := u.Status(); st.Connected || !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("status %+v, want a certificate error", st)
	}
	// A rotation writes the certificate, then the key, then the password:
	// attempts in between keep the last credentials that loaded.
	copyFile(good.clientCert, cert)
	copyFile(good.clientKey, key)
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	waitDrained(t, q, 20*time.Second)
	if l := logs.String(); !strings.Contains(l, "reloaded for the next connection") {
		t.Errorf("log does not say the credentials were reloaded:\n%s", l)
	}
}

// TestCredFilesKeepLastGood: changed files that do not load leave the
// previous credentials in use; once they load, they replace them.
func TestCredFilesKeepLastGood(t *testing.T) {
	dir := t.TempDir()
	a, b := newPKI(t, dir, "a"), newPKI(t, dir, "b")
	cert, key := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	set := func(c, k string) {
		t.Helper()
		for from, to := range map[string]string{c: cert, k: key} {
			data, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	leaf := func(p string) []byte {
		t.Helper()
		data, _ := os.ReadFile(p)
		blk, _ := pem.Decode(data)
		return blk.Bytes
	}
	var logs syncBuffer
	cf := &credFiles{tls: true, ca: a.ca, cert: cert, key: key, log: slog.New(slog.NewTextHandler(&logs, nil))}
	got := func() []byte {
		t.Helper()
		c, err := cf.get()
		if err != nil {
			t.Fatal(err)
		}
		return c.TLS.Certificates[0].Certificate[0]
	}
	set(a.clientCert, a.clientKey)
	if !bytes.Equal(got(), leaf(a.clientCert)) {
		t.Fatal("first load: not certificate a")
	}
	set(b.clientCert, a.clientKey) // half-way through a rotation
	for range 2 {
		if !bytes.Equal(got(), leaf(a.clientCert)) {
			t.Fatal("mismatched pair: previous certificate not kept")
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	set(b.clientCert, b.clientKey)
	if !bytes.Equal(got(), leaf(b.clientCert)) {
		t.Fatal("rotated pair not loaded")
	}
}
