package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shmkv/shmkv/store"
)

// withScratchStore creates a store for demo or bench named after what and
// this process (c.name), runs fn with it and a context that SIGINT or
// SIGTERM cancels, and removes the store afterwards whatever happened.
func (c *cli) withScratchStore(what string, opts *store.Options, fn func(ctx context.Context, s *store.Store) error) error {
	c.name = fmt.Sprintf("shmkv-%s-%d", what, os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := store.Create(c.name, opts)
	if err != nil {
		return err
	}
	removed := false
	defer func() { // also if fn panics
		if !removed {
			s.Close()
			store.Remove(c.name)
		}
	}()
	err = fn(ctx, s)
	s.Close()
	removed = true
	if rerr := store.Remove(c.name); err == nil {
		err = rerr
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s interrupted; store removed", what)
	}
	return err
}
