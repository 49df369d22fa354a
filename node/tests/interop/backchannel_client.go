// Command backchannel_client is an interop probe for Cairn's transport tests.
//
// It dials a server with the backchannel handshake on hashicorp/yamux, calls
// grpc.health.v1.Health/Check over grpc-go on a client-opened stream, and
// answers the sidechannel the server opens: it sends a framed payload, the
// flush packet, and prints a digest of what comes back.
//
// Usage: backchannel_client <tcp|unix> <address> <payload-bytes>
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// payload returns n deterministic lowercase bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// writeFramed sends p as sidechannel frames followed by the flush packet.
func writeFramed(w io.Writer, p []byte) error {
	const maxChunk = 65516
	for len(p) > 0 {
		n := len(p)
		if n > maxChunk {
			n = maxChunk
		}
		if _, err := fmt.Fprintf(w, "%04x", n+4); err != nil {
			return err
		}
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	_, err := w.Write([]byte("0000"))
	return err
}

// serveSidechannel accepts the server-opened stream for sidechannel id 0.
func serveSidechannel(session *yamux.Session, size int, result chan<- string) {
	stream, err := session.Accept()
	if err != nil {
		result <- "accept: " + err.Error()
		return
	}
	defer stream.Close()
	head := make([]byte, 19)
	if _, err := io.ReadFull(stream, head); err != nil {
		result <- "read handshake: " + err.Error()
		return
	}
	if string(head[:11]) != "sidechannel" || int64(binary.BigEndian.Uint64(head[11:])) != 0 {
		result <- fmt.Sprintf("bad handshake %q", head)
		return
	}
	if _, err := stream.Write([]byte("ok")); err != nil {
		result <- "write ok: " + err.Error()
		return
	}
	if err := writeFramed(stream, payload(size)); err != nil {
		result <- "write payload: " + err.Error()
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, stream)
	if err != nil {
		result <- "read response: " + err.Error()
		return
	}
	result <- fmt.Sprintf("sidechannel %d %s", n, hex.EncodeToString(h.Sum(nil)))
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: backchannel_client <tcp|unix> <address> <payload-bytes>")
	}
	size, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fail("bad size: %v", err)
	}
	conn, err := net.DialTimeout(os.Args[1], os.Args[2], 10*time.Second)
	if err != nil {
		fail("dial: %v", err)
	}
	if _, err := conn.Write([]byte("backchannel")); err != nil {
		fail("magic: %v", err)
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = ioutil.Discard
	session, err := yamux.Client(conn, cfg)
	if err != nil {
		fail("yamux: %v", err)
	}
	defer session.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc, err := grpc.DialContext(ctx, "multiplexed",
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return session.Open() }),
	)
	if err != nil {
		fail("grpc dial: %v", err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		fail("check: %v", err)
	}
	fmt.Println("health", resp.Status.String())

	result := make(chan string, 1)
	go serveSidechannel(session, size, result)
	sctx := metadata.AppendToOutgoingContext(ctx, "gitaly-sidechannel-id", "0")
	resp, err = client.Check(sctx, &healthpb.HealthCheckRequest{Service: "sidechannel"})
	if err != nil {
		fail("sidechannel check: %v", err)
	}
	fmt.Println(<-result)
	fmt.Println("health", resp.Status.String())
}
