package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// worker is a process of demo or bench (this binary re-executed with a
// hidden command) as the parent sees it, through the lines it prints:
// "ready" once set up, "ack N" as writes are acknowledged, and a final
// "done ..." report.
type worker struct {
	label string // w1, r2, ...
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{} // closed at its "ready" line
	eof   chan struct{} // closed when its stdout ends
	acked atomic.Int64  // writers: the last "ack" count

	mu     sync.Mutex
	done   string // its "done ..." line
	waited bool
	err    error // from Wait
}

// startWorker starts exe with args as the worker called label. Its stderr
// goes to stderr; ctx ends it.
func startWorker(ctx context.Context, stderr io.Writer, label, exe string, args ...string) (*worker, error) {
	p := &worker{label: label, ready: make(chan struct{}), eof: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, exe, args...)
	p.cmd.Stderr = stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20) // bench's histogram makes "done" long
		readyClosed := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ready"):
				if !readyClosed {
					close(p.ready)
					readyClosed = true
				}
			case strings.HasPrefix(line, "ack "):
				if n, err := strconv.ParseInt(line[4:], 10, 64); err == nil {
					p.acked.Store(n)
				}
			case strings.HasPrefix(line, "done "):
				p.mu.Lock()
				p.done = line
				p.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
	}()
	return p, nil
}

func (p *worker) pid() int { return p.cmd.Process.Pid }

func (p *worker) doneLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// wait reaps the process once its stdout has ended.
func (p *worker) wait() error {
	<-p.eof
	if !p.waited {
		p.err = p.cmd.Wait()
		p.waited = true
	}
	return p.err
}
