package winrm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	masterzen "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"
)

// The command path of one attempt: Create, Command, stdin Send, Receive until Done, and
// Signal (terminate) when the collector gives up on a running command. The requests are
// masterzen's where they fit (Create, Send, Receive, Signal and Delete are built by its
// request functions) and go through our transport; the Command is ours because
// masterzen's asks for console-mode stdin, and the loop is ours so that stdin is sent
// before the first Receive and the Signal gets a context of its own.

const (
	// signalTimeout bounds the Signal sent when a command is cancelled: it goes out on a
	// fresh context, detached from the (expired) host deadline.
	signalTimeout = 5 * time.Second
	// minSignal: below this much time before the host's deadline no Signal is sent.
	minSignal = 100 * time.Millisecond
	// envelopeOverhead is what a Send envelope carries besides its base64 data.
	envelopeOverhead = 4 << 10
)

// createShell opens a shell and returns its id (masterzen's Shell does not expose it).
func createShell(tr *transport, client *masterzen.Client, params *masterzen.Parameters) (*masterzen.Shell, string, error) {
	req := masterzen.NewOpenShellRequest(tr.url, params)
	defer req.Free()
	resp, err := tr.Post(client, req)
	if err != nil {
		return nil, "", err
	}
	id, err := masterzen.ParseOpenShellResponse(resp)
	if err != nil || id == "" {
		return nil, "", fmt.Errorf("%w: create response without ShellId", ErrProtocol)
	}
	return client.NewShell(id), id, nil
}

// newCommandRequest is the Command request of a collection. stdin is a pipe
// (WINRS_CONSOLEMODE_STDIN=FALSE), as for any client that sends its input with Send:
// powershell.exe then reads it to its end like redirected input.
func newCommandRequest(uri, shellID, cmdline string, params *masterzen.Parameters) *soap.SoapMessage {
	msg := soap.NewMessage()
	msg.Header().
		To(uri).
		ReplyTo("http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous").
		MaxEnvelopeSize(params.EnvelopeSize).
		Id(messageID()).
		Locale(params.Locale).
		Timeout(params.Timeout).
		Action("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command").
		ResourceURI("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd").
		ShellId(shellID).
		AddOption(soap.NewHeaderOption("WINRS_CONSOLEMODE_STDIN", "FALSE")).
		AddOption(soap.NewHeaderOption("WINRS_SKIP_CMD_SHELL", "FALSE")).
		Build()
	body := msg.CreateBodyElement("CommandLine", soap.DOM_NS_WIN_SHELL)
	msg.CreateElement(body, "Command", soap.DOM_NS_WIN_SHELL).SetContent("<![CDATA[" + cmdline + "]]>")
	return msg
}

func messageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("uuid:%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sendChunk is the most stdin bytes one Send carries: its base64 (4/3) plus the
// envelope stays within the envelope size the client announces (w:MaxEnvelopeSize,
// 153,600 bytes by default), below any listener's MaxEnvelopeSizekb (150 KB on 2008 R2,
// 500 KB later).
func sendChunk(envelopeSize int) int {
	return max((envelopeSize-envelopeOverhead)/4*3, 1024)
}

// runCollection runs col on the shell and reads its output into stdout and stderr
// until the command is done. It returns the exit code. When ctx ends or stdout
// overflows before the command is done, it sends Signal terminate on a fresh short
// context and returns ctx's error (an overflow is the caller's to report).
func runCollection(ctx context.Context, cleanupBy time.Time, tr *transport, client *masterzen.Client, shellID string, params *masterzen.Parameters, col Collection, stdout, stderr *limitedBuffer) (int, error) {
	req := newCommandRequest(tr.url, shellID, col.CommandLine, params)
	resp, err := tr.Post(client, req)
	req.Free()
	if err != nil {
		return 0, fmt.Errorf("run command: %w", err)
	}
	cmdID, err := masterzen.ParseExecuteCommandResponse(resp)
	if err != nil || cmdID == "" {
		return 0, fmt.Errorf("run command: %w: command response without CommandId", ErrProtocol)
	}
	terminate := func() {
		// The Signal may use half of what is left before cleanupBy (the host's deadline),
		// at most signalTimeout: the Delete that follows keeps the other half, and
		// host_timeout holds. With almost nothing left it is not sent (the Delete ends
		// the command too).
		until := time.Now().Add(signalTimeout)
		if !cleanupBy.IsZero() {
			if half := time.Now().Add(time.Until(cleanupBy) / 2); half.Before(until) {
				until = half
			}
			if time.Until(until) < minSignal {
				return
			}
		}
		sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), until)
		defer cancel()
		tr.setContext(sctx)
		defer tr.setContext(ctx)
		sig := masterzen.NewSignalRequest(tr.url, shellID, cmdID, params)
		defer sig.Free()
		_, _ = tr.Post(client, sig) // best effort: the Delete that follows ends the shell anyway
	}
	// stdin: the whole payload, in chunks, the last one marked End="true".
	chunk := sendChunk(params.EnvelopeSize)
	for rest := col.Stdin; ; {
		n := min(len(rest), chunk)
		send := masterzen.NewSendInputRequest(tr.url, shellID, cmdID, rest[:n], n == len(rest), params)
		_, err := tr.Post(client, send)
		send.Free()
		if err != nil {
			if ctx.Err() != nil {
				terminate()
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("send stdin: %w", err)
		}
		if rest = rest[n:]; len(rest) == 0 {
			break
		}
	}
	for {
		if ctx.Err() != nil {
			terminate()
			return 0, ctx.Err()
		}
		recv := masterzen.NewGetOutputRequest(tr.url, shellID, cmdID, "stdout stderr", params)
		resp, err := tr.Post(client, recv)
		recv.Free()
		if err != nil {
			if errors.Is(err, ErrTimeout) && ctx.Err() == nil {
				continue // no output within OperationTimeout: ask again (wsman.md)
			}
			if ctx.Err() != nil {
				terminate()
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("receive output: %w", err)
		}
		done, code, err := masterzen.ParseSlurpOutputErrResponse(resp, stdout, stderr)
		if err != nil {
			return 0, fmt.Errorf("receive output: %w: %v", ErrProtocol, err)
		}
		if done {
			return code, nil
		}
		if stdout.overflow {
			terminate()
			return 0, nil
		}
	}
}
