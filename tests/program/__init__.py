"""The llmsup program, run as a real command or a real server on loopback."""
