"""The hyperprior latent codec that the image, motion and residual coders all use (../shared/DESIGN.md,
"Layers", floor 2): `model` (transforms, hyperprior, gains, context models), `codec` (latent <->
bytes), `weights` (entropy tables and the weights-file format), `search` (the encoder-side latent
search). Imports only the ground floor (`nn`, `entropy`, `errors`, `fileio`)."""
