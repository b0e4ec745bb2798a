"""The three training stages (next step): one recipe driven by the profile, on DeepSpeed."""
