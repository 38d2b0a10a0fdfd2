"""The DHT layer: a Kademlia node (kademlia 2.2 subclassed) with our RPCs and policies."""
