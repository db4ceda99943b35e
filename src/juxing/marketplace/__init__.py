"""The merchant–creator marketplace: briefs, applications with escrowed fees, matching."""
