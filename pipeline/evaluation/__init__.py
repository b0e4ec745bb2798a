"""MMMU and MMMU Multi evaluation (next step), scored exactly like the official code, and the report."""
