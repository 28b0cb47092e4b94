"""Parts of the demo-data generator (``datasets/demo.py``): real source images, defects, the LOCO emitter."""
