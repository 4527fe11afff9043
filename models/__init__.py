"""Model families behind one interface: LightFM hybrid, implicit ALS/BPR, popularity."""
