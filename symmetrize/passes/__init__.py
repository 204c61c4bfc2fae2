"""Graph passes that turn pose networks into mirror-equivariant ones."""
