// go-producer sends -count records ("hello N") to intaked's topic -topic, each with a header,
// and exits once intake has acknowledged every one (or says which failed).
//
//	go build && ./go-producer -address 127.0.0.1:7411 -topic greetings -count 10
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"intake.dev/intake"
)

func main() {
	address := flag.String("address", "127.0.0.1:7411", "intaked's --listen address")
	topic := flag.String("topic", "greetings", "the topic")
	count := flag.Int("count", 10, "records to send")
	flag.Parse()

	producer, err := intake.NewProducer(*address, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	for number := 0; number < *count; number++ {
		value := []byte(fmt.Sprintf("hello %d", number))
		header := intake.Header{Key: "sent-by", Value: []byte("go-producer")}
		if _, err := producer.Send(*topic, nil, value, header); err != nil {
			log.Fatal(err)
		}
	}
	if err := producer.Flush(10 * time.Second); err != nil {
		log.Fatal(err) // an *intake.DeliveryError names each record that failed
	}
	fmt.Printf("%d records acknowledged by %s\n", *count, *address)
}
