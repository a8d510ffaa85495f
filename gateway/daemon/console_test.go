package daemon

import (
	"os"
	"path/filepath"
	"testing"

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
