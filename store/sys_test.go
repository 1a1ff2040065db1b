package store

import (
	"io/fs"
	"syscall"
)

func blocksOf(fi fs.FileInfo) int64 { return fi.Sys().(*syscall.Stat_t).Blocks * 512 }
