package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The crash test runs a child process (this test binary, re-executed) that
// appends and acknowledges as fast as it can and reports on stdout every
// Put and Ack that returned. The parent kills it with SIGKILL after a random
// number of reports, reopens the queue and checks:
//   - every record whose Put returned and whose Ack did not is delivered,
//     with its data, in sequence order;
//   - nothing at or below the durable cursor is delivered, and the durable
//     cursor never goes back behind a value the child saw written.
//
// EDGEGW_CRASH_ROUNDS sets the number of rounds (default 50, 10 with -short).

const (
	crashDirEnv   = "EDGEGW_BUFFER_CRASH_DIR"
	crashFsyncEnv = "EDGEGW_BUFFER_CRASH_FSYNC"
	crashRoundEnv = "EDGEGW_BUFFER_CRASH_ROUND"
)

func crashOptions(fsync FsyncPolicy) Options {
	return Options{Fsync: fsync, SegmentSize: 8 << 10, CursorInterval: 2e6, FsyncInterval: 5e6}
}

// TestCrashChild is the child process of TestCrash; it does nothing in a
// normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrash only")
	}
	var pol FsyncPolicy
	pol.UnmarshalText([]byte(os.Getenv(crashFsyncEnv)))
	round := os.Getenv(crashRoundEnv)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Appendf(nil, format+"\n", args...)
		outMu.Lock()
		os.Stdout.Write(line) // one write per line: atomic on a pipe, survives SIGKILL once returned
		outMu.Unlock()
	}
	say("S")
	q, err := Open(dir, crashOptions(pol))
	if err != nil {
		say("E %v", err)
		select {}
	}
	say("R")
	for p := range 4 {
		go func() {
			for i := 0; ; i++ {
				class := "telemetry"
				if i%8 == 3 {
					class = "alarm"
				}
				data := crashPayload(round, p, i)
				seq, err := q.Put(class, []byte(data))
				if err != nil {
					say("E put: %v", err)
					select {}
				}
				say("P %s %d %s", class, seq, data)
			}
		}()
	}
	go func() {
		var last [2]uint64
		for {
			st := q.Stats()
			for i, c := range st.Classes {
				if c.Cursor != last[i] {
					last[i] = c.Cursor
					say("C %s %d", c.Name, c.Cursor)
				}
			}
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	var window []Record
	for n := 0; ; n++ {
		rec, err := q.Next(context.Background())
		if err != nil {
			say("E next: %v", err)
			select {}
		}
		window = append(window, rec)
		if len(window) < 1+rng.IntN(16) {
			continue
		}
		rng.Shuffle(len(window), func(i, j int) { window[i], window[j] = window[j], window[i] })
		for _, r := range window {
			if err := q.Ack(r.Class, r.Seq); err != nil {
				say("E ack: %v", err)
				select {}
			}
			say("A %s %d", r.Class, r.Seq)
		}
		window = window[:0]
		if rng.IntN(100) == 0 {
			q.Rewind()
		}
	}
}

func crashPayload(round string, p, i int) string {
	return fmt.Sprintf("%s.%d.%d.%s", round, p, i, strings.Repeat("x", (i*37)%300))
}

type crashModel struct {
	put    map[uint64]string // seq → data, Put returned
	acked  map[uint64]bool   // Ack returned
	cursor uint64            // highest durable cursor the child reported

	nPut, nAcked, nDelivered, nLostTail int
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	if s := os.Getenv("EDGEGW_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("EDGEGW_CRASH_ROUNDS=%q: %v", s, err)
		}
		rounds = n
	}
	dir := t.TempDir()
	models := map[string]*crashModel{}
	for _, c := range DefaultClasses {
		models[c.Name] = &crashModel{put: map[uint64]string{}, acked: map[uint64]bool{}}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	defer func() {
		for name, m := range models {
			t.Logf("%s: %d records put, %d acknowledged, %d delivered after the kills, %d unwritten when killed (interval policy); durable cursor %d",
				name, m.nPut, m.nAcked, m.nDelivered, m.nLostTail, m.cursor)
		}
	}()
	for round := range rounds {
		pol := []FsyncPolicy{FsyncAlways, FsyncInterval}[round%2]
		killAfter := 1 + rng.IntN(600)
		if round%10 == 5 {
			killAfter = 1 + rng.IntN(2) // during or right after recovery
		}
		crashRound(t, dir, round, pol, killAfter, models)
		if t.Failed() {
			return
		}
	}
}

func crashRound(t *testing.T, dir string, round int, pol FsyncPolicy, killAfter int, models map[string]*crashModel) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashFsyncEnv+"="+pol.String(), crashRoundEnv+"="+strconv.Itoa(round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	n := 0
	killed := false
	for sc.Scan() {
		line := sc.Text()
		n++
		if n >= killAfter && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
		f := strings.SplitN(line, " ", 4)
		switch f[0] {
		case "S", "R":
		case "E":
			t.Errorf("round %d: child: %s", round, line)
		case "P", "A", "C":
			m := models[f[1]]
			seq, _ := strconv.ParseUint(f[2], 10, 64)
			switch f[0] {
			case "P":
				if old, ok := m.put[seq]; ok && old != f[3] {
					t.Errorf("round %d: %s seq %d put twice: %.20q then %.20q", round, f[1], seq, old, f[3])
				}
				m.put[seq] = f[3]
				m.nPut++
			case "A":
				m.acked[seq] = true
				m.nAcked++
			case "C":
				m.cursor = max(m.cursor, seq)
			}
		}
	}
	if !killed {
		cmd.Process.Signal(syscall.SIGKILL)
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if bytes.Contains(stderr.Bytes(), []byte("DATA RACE")) || bytes.Contains(stderr.Bytes(), []byte("panic")) {
		t.Fatalf("round %d: child stderr:\n%s", round, stderr.Bytes())
	}

	q, err := Open(dir, crashOptions(FsyncNever))
	if err != nil {
		t.Fatalf("round %d: Open after kill = %v", round, err)
	}
	defer q.Close()
	delivered := map[string]map[uint64]bool{"alarm": {}, "telemetry": {}}
	last := map[string]uint64{}
	for {
		rec, ok, err := q.TryNext()
		if err != nil {
			t.Fatalf("round %d: TryNext = %v", round, err)
		}
		if !ok {
			break
		}
		m := models[rec.Class]
		if rec.Seq <= last[rec.Class] {
			t.Fatalf("round %d: %s seq %d delivered after %d", round, rec.Class, rec.Seq, last[rec.Class])
		}
		last[rec.Class] = rec.Seq
		if want, ok := m.put[rec.Seq]; ok && want != string(rec.Data) {
			t.Fatalf("round %d: %s seq %d = %.30q, want %.30q", round, rec.Class, rec.Seq, rec.Data, want)
		}
		delivered[rec.Class][rec.Seq] = true
		m.nDelivered++
	}
	st := q.Stats()
	for _, cs := range st.Classes {
		m := models[cs.Name]
		if cs.Cursor < m.cursor {
			t.Errorf("round %d: %s durable cursor %d went back behind %d", round, cs.Name, cs.Cursor, m.cursor)
		}
		for seq := range delivered[cs.Name] {
			if seq <= cs.Cursor {
				t.Errorf("round %d: %s seq %d delivered at or below the cursor %d", round, cs.Name, seq, cs.Cursor)
			}
		}
		// Under FsyncInterval, Put returns before the write: a kill may
		// lose the newest records, never older ones.
		maxSeen := cs.Cursor
		for seq := range delivered[cs.Name] {
			maxSeen = max(maxSeen, seq)
		}
		missing, unreported := 0, 0
		for seq := range m.put {
			if pol == FsyncInterval && seq > maxSeen && !delivered[cs.Name][seq] {
				delete(m.put, seq) // lost with the process; its number will be reused
				delete(m.acked, seq)
				m.nLostTail++
				continue
			}
			if !m.acked[seq] && !delivered[cs.Name][seq] && seq <= cs.Cursor {
				// Acknowledged by the child, killed before it said so: at
				// most its acknowledgement window.
				unreported++
				continue
			}
			if !m.acked[seq] && !delivered[cs.Name][seq] {
				if missing < 5 {
					t.Errorf("round %d (%v): %s seq %d: Put returned, never acknowledged, not delivered (cursor %d)", round, cs.Name, cs.Name, seq, cs.Cursor)
				}
				missing++
			}
			if seq <= cs.Cursor {
				delete(m.put, seq)
				delete(m.acked, seq)
			}
		}
		if unreported > 16 {
			t.Errorf("round %d: %s: %d records below the cursor %d never reported acknowledged, want ≤ 16 (the child's window)", round, cs.Name, unreported, cs.Cursor)
		}
		if cs.CorruptSkipped != 0 {
			t.Errorf("round %d: %s CorruptSkipped = %d after a process crash, want 0", round, cs.Name, cs.CorruptSkipped)
		}
	}
}
