// Command rdsaudit audits Remote Desktop Services CAL licensing across a Windows Server
// fleet. See README.md.
package main

import (
	"context"
	"os"

	"github.com/rdsaudit/rdsaudit/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, cli.SystemClock))
}
