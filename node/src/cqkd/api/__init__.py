"""HTTP apps of Alice and Bob: the control API and the ETSI GS QKD 014 key delivery API."""
