package main

import (
	"context"
	"errors"
	"io"
)

// runTransparentBench runs farmem bench --mode transparent. The pager daemon
// it needs is issue 5's work; until it lands the mode is refused by name.
func runTransparentBench(ctx context.Context, f benchFlags, out io.Writer) error {
	return errors.New("--mode transparent: the pager daemon is not built yet (issue 5)")
}
