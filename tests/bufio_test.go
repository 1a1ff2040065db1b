package tests

import (
	"bufio"
	"os"
)

func bufioWriter() *bufio.Writer { return bufio.NewWriter(os.Stdout) }
