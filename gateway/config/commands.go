package config

import "time"

// Commands is the [commands] table: the bounds every command meets before
// it can reach an actuator, whichever way it came in (the cloud through
// the uplink, or a local client through the embedded broker).
type Commands struct {
	// AllowNoExpiry accepts remote commands without an expires_at. Off by
	// default: a command captured on its way could otherwise be replayed
	// once its id is forgotten.
	AllowNoExpiry bool `toml:"allow_no_expiry"`
	// MaxExpiry is the furthest expires_at accepted, counted from when the
	// command arrives; default 24h. Applied ids are remembered this long.
	MaxExpiry Duration `toml:"max_expiry"`
	// MaxPayload bounds a command's payload; default 4 KiB.
	MaxPayload Size `toml:"max_payload"`
	// MaxIDs and MaxIDBytes bound the remembered ids of applied commands;
	// defaults 10000 and 1 MiB. When both are reached and no id is older
	// than MaxExpiry, new commands are refused rather than an id
	// forgotten early.
	MaxIDs     int  `toml:"max_ids"`
	MaxIDBytes Size `toml:"max_id_bytes"`
}

// Defaults of [commands].
const (
	DefaultCommandMaxExpiry  = 24 * time.Hour
	DefaultCommandMaxPayload = 4 << 10
	DefaultCommandMaxIDs     = 10000
	DefaultCommandMaxIDBytes = 1 << 20
)

func (c *Commands) setDefaults() {
	def(&c.MaxExpiry, Duration(DefaultCommandMaxExpiry))
	def(&c.MaxPayload, DefaultCommandMaxPayload)
	def(&c.MaxIDs, DefaultCommandMaxIDs)
	def(&c.MaxIDBytes, DefaultCommandMaxIDBytes)
}

func (v *validator) commands() {
	c := v.c.Commands
	if c.MaxExpiry <= 0 {
		v.add("commands.max_expiry", "must be positive")
	} else if c.MaxExpiry > Duration(30*24*time.Hour) {
		v.add("commands.max_expiry", "%v above 720h", c.MaxExpiry.D())
	}
	if c.MaxPayload < 64 || c.MaxPayload > 1<<20 {
		v.add("commands.max_payload", "%d outside 64..1048576", c.MaxPayload)
	}
	if c.MaxIDs < 1 || c.MaxIDs > 1000000 {
		v.add("commands.max_ids", "%d outside 1..1000000", c.MaxIDs)
	}
	if c.MaxIDBytes < 4096 || c.MaxIDBytes > 64<<20 {
		v.add("commands.max_id_bytes", "%d outside 4096..67108864", c.MaxIDBytes)
	}
}
