"""Stage 7, residues: residue maps of selected units and recovery of annotated or planted sites."""
