"""bonebase: the data and model platform of a multi-centre imaging database of bone tumours."""

import os

# torch's OpenMP threads spin while they wait for work, and on a shared or small machine (the
# embedded defaults' single host, CI's 2 cores) that spinning takes the cores from the work:
# a training step ran 1.5-2x faster with PASSIVE at load 4-6, the watch's forward pass 2-3x at
# load 7-9. It must be set before torch is loaded; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
