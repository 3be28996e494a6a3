package cli

import (
	"context"
	"io"
)

// run is gokai's own program (cmd/gokai), which the tests drive.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return Program{Name: "gokai", Services: []Service{KV}}.Run(ctx, args, stdout, stderr)
}
