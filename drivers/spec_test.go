package drivers

import (
	"errors"
	"testing"
)

func TestSpecDecodeOptions(t *testing.T) {
	type opts struct{ Addr int }
	bad := errors.New("unknown key")
	tests := []struct {
		name    string
		decode  func(any) error
		want    int
		wantErr error
	}{
		{"no options table", nil, 7, nil},
		{"decoded", func(v any) error { v.(*opts).Addr = 0x76; return nil }, 0x76, nil},
		{"error passed on", func(any) error { return bad }, 7, bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts{Addr: 7} // a driver's default
			err := Spec{Decode: tt.decode}.DecodeOptions(&o)
			if !errors.Is(err, tt.wantErr) || o.Addr != tt.want {
				t.Errorf("DecodeOptions = %v, Addr %d; want %v, Addr %d", err, o.Addr, tt.wantErr, tt.want)
			}
		})
	}
}
