"""Partner rewards: signed server-to-server callbacks from rewarded-video networks and offerwalls."""
