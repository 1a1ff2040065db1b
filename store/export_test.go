package store

import "github.com/shmkv/shmkv/layout"

// Test hooks.

// Header exposes the region's header to tests that damage it.
func (s *Store) Header() *layout.Header { return s.hdr }

// Mapping exposes the mapped bytes to tests that damage them.
func (s *Store) Mapping() []byte { return s.m.data }

// Geometry is the geometry this Store validated at open.
func (s *Store) Geometry() layout.Geometry { return s.geo }
