"""End-to-end runs that leave a folder behind: a VAE on dSprites, AIR, GQN, evaluation and the demo."""
