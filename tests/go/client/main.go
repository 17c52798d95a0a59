// The tutorial's Go client (chat-room-tutorial.md, go/client/main.go), with the
// address and client id as arguments and machine-readable output, so the tests can
// drive it: one received message per line as "user_id<TAB>text<TAB>timestamp".
// Lines on stdin are sent; "exit" (or the end of stdin) closes the sending side.
// With PURECHAT_TOKEN set, every call carries it as `authorization: Bearer TOKEN`,
// as a tutorial user would add a server's token (an account's session, say).
// The generated package comes from proto/chat.proto, untouched, at test time. Built
// against Debian's grpc-go 1.33, which predates credentials/insecure: WithInsecure is
// that version's spelling of the tutorial's insecure.NewCredentials().
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	pb "purechatcompat/chatpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	address, clientID := os.Args[1], os.Args[2]
	conn, err := grpc.Dial(address, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintf(os.Stderr, "could not connect: %v\n", err)
		os.Exit(1)
	}
	defer conn.Close()

	client := pb.NewChatServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if token := os.Getenv("PURECHAT_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	stream, err := client.JoinChat(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "could not start stream: %v\n", err)
		os.Exit(1)
	}

	done := make(chan int)
	go func() {
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				done <- 0
				return
			}
			if err != nil {
				st, _ := status.FromError(err)
				if st.Code() == codes.Canceled {
					done <- 0
					return
				}
				fmt.Fprintf(os.Stderr, "%s\t%s\n", st.Code(), st.Message())
				done <- 1
				return
			}
			fmt.Printf("%s\t%s\t%d\n", msg.GetUserId(), msg.GetText(), msg.GetTimestamp())
		}
	}()

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		text := scanner.Text()
		if strings.ToLower(text) == "exit" {
			break
		}
		if err := stream.Send(&pb.ChatMessage{UserId: clientID, Text: text}); err != nil {
			break // the receiver reports why
		}
	}
	stream.CloseSend()
	os.Exit(<-done)
}
