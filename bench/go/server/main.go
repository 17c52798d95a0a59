// The tutorial's Go server (chat-room-tutorial.md, section "Go Server",
// go/server/main.go), kept as the tutorial wrote it so that bench/run.py measures
// purechat against the reference its users start from: the global clients map, the
// one broadcaster goroutine that holds the lock while it sends to every member, the
// bounded messageQueue, a log line per message received.
//
// Changed, and only for these reasons:
//   - the import path of the generated package: "./chatpb" is not allowed in GOPATH
//     mode; tests/gobuild.py generates it from proto/chat.proto as purechatcompat/chatpb;
//   - the listen address is the first argument (default ":50051", the tutorial's), so
//     the benchmark can use a free port ("127.0.0.1:0");
//   - once listening it prints "listening on HOST:PORT" on stdout, so the caller knows
//     the port and that it is ready (the tutorial's log line stays, on stderr).
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	pb "purechatcompat/chatpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clientChannel is used to send messages to a specific client goroutine.
type clientChannel struct {
	stream pb.ChatService_JoinChatServer
	id     string
}

// Global state to manage connected clients and broadcast messages.
var (
	clients      = make(map[string]*clientChannel)
	mu           sync.Mutex
	messageQueue = make(chan *pb.ChatMessage, 100) // Channel for broadcast messages
)

type server struct {
	pb.UnimplementedChatServiceServer
}

// Start a goroutine to continuously broadcast messages from the queue to all connected clients.
func init() {
	go broadcaster()
}

func broadcaster() {
	for msg := range messageQueue {
		mu.Lock()
		// Iterate over all connected client channels and send the message
		for _, client := range clients {
			if err := client.stream.Send(msg); err != nil {
				log.Printf("Broadcaster: Error sending message to %s: %v", client.id, err)
				// Handle disconnection: client will be removed by the main stream goroutine
			}
		}
		mu.Unlock()
	}
}

// 7.2. Implementation: Bidirectional Streaming Method (Go)
func (*server) JoinChat(stream pb.ChatService_JoinChatServer) error {
	// Assign a unique ID to the new client
	clientName := fmt.Sprintf("User_%d", time.Now().UnixNano())
	log.Printf("Server: New client connected with ID: %s", clientName)

	client := &clientChannel{
		stream: stream,
		id:     clientName,
	}

	// Add client to the global map
	mu.Lock()
	clients[clientName] = client
	mu.Unlock()

	// --- 1. Reader Goroutine (Handles incoming client messages) ---
	// This goroutine blocks on Recv() and pushes messages to the global queue.
	go func() {
		for {
			req, err := stream.Recv()

			if err == io.EOF {
				log.Printf("Server: Client %s finished sending.", clientName)
				return // End of client's stream
			}
			if err != nil {
				// Handle client disconnection or error
				log.Printf("Server: Error reading from client %s: %v", clientName, err)
				return
			}

			// Augment message with Server info and push to broadcast queue
			req.Timestamp = time.Now().Unix()
			messageQueue <- req
			log.Printf("Server: Received from %s: %s", req.GetUserId(), req.GetText())
		}
	}()

	// --- 2. Keep the main stream function alive ---
	// Wait for the stream context to be cancelled (client disconnects or error)
	<-stream.Context().Done()

	// --- Clean up ---
	mu.Lock()
	delete(clients, clientName)
	mu.Unlock()
	log.Printf("Server: Client %s disconnected and removed.", clientName)

	return status.Error(codes.Canceled, "Stream closed by client or server error")
}

func main() {
	address := ":50051"
	if len(os.Args) > 1 {
		address = os.Args[1]
	}
	lis, err := net.Listen("tcp", address)
	if err != nil {
		log.Fatalf("Fatal: failed to listen: %v", err)
	}
	s := grpc.NewServer()
	pb.RegisterChatServiceServer(s, &server{})

	log.Printf("✅ Go Chat Server listening on %s (Broadcasting enabled)", lis.Addr())
	fmt.Printf("listening on %s\n", lis.Addr())
	if err := s.Serve(lis); err != nil {
		log.Fatalf("Fatal: failed to serve: %v", err)
	}
}
