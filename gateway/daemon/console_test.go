package daemon

import (
	"path/filepath"
	"testing"

	"github.com/edgegw/edgegw/mqtt/broker"
)

func TestPasswordCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	for _, u := range [][2]string{{"tech", "s3cret"}, {"dash", "display"}} {
		if err := broker.AppendPasswordEntry(path, u[0], u[1]); err != nil {
			t.Fatal(err)
		}
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
		check := passwordCheck(path, tt.users)
		if got := check(tt.user, []byte(tt.pw)); got != tt.want {
			t.Errorf("%s: check(%q, %q) = %v, want %v", tt.name, tt.user, tt.pw, got, tt.want)
		}
	}
	if passwordCheck(filepath.Join(t.TempDir(), "none"), nil)("tech", []byte("s3cret")) {
		t.Error("a missing password file lets a user in")
	}
}
