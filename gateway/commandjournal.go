package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw/gateway/internal/atomicfile"
)

// The command log on disk is a journal, {state_dir}/commands.log: one JSON
// record per line, appended and synced as each change happens, so that a
// command costs two small writes however many ids are remembered. Opening
// the log replays it and writes a fresh one holding only the live state;
// so does an append that takes the journal past twice the last snapshot.
// A line cut short by a crash, or damaged, is skipped.
//
// A commands.json written by an earlier version (the whole state, rewritten
// at each change) is read once, when there is no journal yet, and removed.

// journalRec is one line of the journal.
type journalRec struct {
	// Entry is an id claimed (Result nil) or finished; a later line for
	// the same device/command and id replaces an earlier one.
	Entry *logEntry `json:"entry,omitempty"`
	// AutoOff sets the auto-off deadline of Key, or clears it when At is
	// zero.
	AutoOff *autoOffRec `json:"auto_off,omitempty"`
}

type autoOffRec struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

const (
	journalName   = "commands.log"
	oldStateName  = "commands.json"
	journalMinGap = 64 << 10 // journal growth allowed past twice the snapshot
)

// openJournal loads the state from the journal in dir (or an old
// commands.json), then writes a fresh journal and keeps it open for
// appends.
func (l *commandLog) openJournal(dir string, now time.Time) error {
	l.path = filepath.Join(dir, journalName)
	old := filepath.Join(dir, oldStateName)
	b, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		ob, err := os.ReadFile(old)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("gateway: %w", err)
		}
		l.load(ob, now)
	case err != nil:
		return fmt.Errorf("gateway: %w", err)
	default:
		l.replay(b, now)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.compactLocked(); err != nil {
		return err
	}
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.log.Warn("old command log not removed", "err", err)
	}
	return nil
}

// replay rebuilds the state from journal lines.
func (l *commandLog) replay(b []byte, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state = logState{AutoOff: map[string]time.Time{}}
	bad := 0
	for len(b) > 0 {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		b = rest
		if !complete {
			bad++ // cut short by a crash
			break
		}
		var r journalRec
		if err := json.Unmarshal(line, &r); err != nil {
			bad++
			continue
		}
		if r.Entry != nil {
			l.state.IDs = append(l.state.IDs, r.Entry)
		}
		if a := r.AutoOff; a != nil {
			if a.At.IsZero() {
				delete(l.state.AutoOff, a.Key)
			} else {
				l.state.AutoOff[a.Key] = a.At
			}
		}
	}
	if bad > 0 {
		l.log.Warn("command log: damaged lines skipped", "lines", bad)
	}
	l.loadLocked(now)
}

// compactLocked replaces the journal with the live state and reopens it
// for appends.
func (l *commandLog) compactLocked() error {
	var buf []byte
	add := func(r journalRec) {
		b, err := json.Marshal(r)
		if err == nil {
			buf = append(append(buf, b...), '\n')
		}
	}
	for _, e := range l.state.IDs {
		add(journalRec{Entry: e})
	}
	for k, at := range l.state.AutoOff {
		add(journalRec{AutoOff: &autoOffRec{Key: k, At: at}})
	}
	// The old journal stays open until the new one is in place: a failed
	// compaction leaves appends going where they went.
	if err := atomicfile.WriteFile(l.path, buf, 0o644); err != nil {
		return fmt.Errorf("gateway: command log: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		// The new journal holds everything; without a handle every
		// append fails, and commands are refused, until a restart.
		if l.f != nil {
			l.f.Close()
			l.f = nil
		}
		return fmt.Errorf("gateway: command log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.snapshot, l.written = f, len(buf), len(buf)
	return nil
}

// appendLocked writes r to the journal and syncs it, compacting the
// journal when it has grown past twice the last snapshot.
func (l *commandLog) appendLocked(r journalRec) error {
	if l.f == nil {
		return errors.New("gateway: command log not open")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("gateway: command log: %w", err)
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("gateway: command log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("gateway: command log: %w", err)
	}
	l.written += len(b)
	if l.written > 2*l.snapshot+journalMinGap {
		// r is durable already: a failed compaction is only logged.
		if err := l.compactLocked(); err != nil {
			l.log.Error("command log not compacted", "err", err)
		}
	}
	return nil
}

// saveLocked appends r, logging a failure: a lost auto-off deadline or
// result is not worth refusing a command for (claim refuses when its own
// record cannot be written).
func (l *commandLog) saveLocked(r journalRec) {
	if err := l.appendLocked(r); err != nil {
		l.log.Error("command log not saved", "err", err)
	}
}

// closeJournal closes the journal file.
func (l *commandLog) closeJournal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
