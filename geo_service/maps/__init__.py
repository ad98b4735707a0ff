"""Map pages for people: Folium pages that load every layer from the API by URL."""
