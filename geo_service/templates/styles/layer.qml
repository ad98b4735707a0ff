{# A layer's QGIS style: written by geo_service/styles/qml.py from its definition. #}
<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="{{ version }}" styleCategories="Symbology|Rendering"{% if min_scale %} hasScaleBasedVisibilityFlag="1" minScale="{{ min_scale }}" maxScale="0"{% else %} hasScaleBasedVisibilityFlag="0"{% endif %}>
  <!-- {{ name }} -->
{% if field %}
  <renderer-v2 type="categorizedSymbol" attr="{{ field }}" forceraster="0" symbollevels="0" enableorderby="0" referencescale="-1">
    <categories>
{% for c in categories %}
      <category value="{{ c.value }}" label="{{ c.label }}" symbol="{{ c.symbol }}" render="true"/>
{% endfor %}
    </categories>
{% else %}
  <renderer-v2 type="singleSymbol" forceraster="0" symbollevels="0" enableorderby="0" referencescale="-1">
{% endif %}
    <symbols>
{% for s in symbols %}
      <symbol type="{{ s.type }}" name="{{ s.name }}" alpha="1" clip_to_extent="1" force_rhr="0" frame_rate="10" is_animated="0">
{% for layer in s.layers %}
        <layer class="{{ layer.kind }}" enabled="1" locked="0" pass="0">
          <Option type="Map">
{% for key, value in layer.options.items() %}
            <Option name="{{ key }}" type="QString" value="{{ value }}"/>
{% endfor %}
          </Option>
          <data_defined_properties>
            <Option type="Map">
              <Option name="name" type="QString" value=""/>
{% if layer.defined %}
              <Option name="properties" type="Map">
{% for key, text in layer.defined.items() %}
                <Option name="{{ key }}" type="Map">
                  <Option name="active" type="bool" value="true"/>
                  <Option name="expression" type="QString" value="{{ text }}"/>
                  <Option name="type" type="int" value="{{ expression }}"/>
                </Option>
{% endfor %}
              </Option>
{% else %}
              <Option name="properties"/>
{% endif %}
              <Option name="type" type="QString" value="collection"/>
            </Option>
          </data_defined_properties>
        </layer>
{% endfor %}
      </symbol>
{% endfor %}
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <blendMode>0</blendMode>
  <featureBlendMode>0</featureBlendMode>
  <layerOpacity>1</layerOpacity>
  <layerGeometryType>{{ geometry }}</layerGeometryType>
</qgis>
