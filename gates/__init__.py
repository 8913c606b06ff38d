"""Policy files, one per model: gates/<model>.yaml. Shipped as package data so `mlops` works from any folder."""
