"""CQKD DHT: BB84 key distribution simulated over the workers of a Kademlia DHT."""

__version__ = "0.1.0"
